"""The gateway's Billing port over gRPC: deadlines on every call, every failure fails closed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

import grpc
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.errors import DependencyUnavailable
from gateway.ports import Subscriber
from hallgate_pb.billing.v1 import billing_pb2

_SERVICE = "/hallgate.billing.v1.BillingService/"


def _when(
    resp: billing_pb2.GetSubscriberResponse, field: Literal["sim_changed_at", "ported_at"]
) -> datetime | None:
    if not resp.HasField(field):
        return None
    ts: Timestamp = getattr(resp, field)
    return ts.ToDatetime(tzinfo=UTC)


class GrpcBilling:
    """Implements gateway.ports.Billing. The channel is made on first use, inside the running loop
    that will use it (a grpc.aio channel is bound to one event loop)."""

    def __init__(self, target: str, timeout: float = 3.0, page_size: int = 1000) -> None:
        self.target = target
        self.timeout = timeout
        self.page_size = page_size
        self._channel: Any = None
        self._rpcs: dict[str, Any] = {}

    def _rpc(self, name: str) -> Any:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.target)
            self._rpcs = {
                "VerifyServicePassword": self._channel.unary_unary(
                    _SERVICE + "VerifyServicePassword",
                    request_serializer=billing_pb2.VerifyServicePasswordRequest.SerializeToString,
                    response_deserializer=billing_pb2.VerifyServicePasswordResponse.FromString,
                ),
                "GetSubscriber": self._channel.unary_unary(
                    _SERVICE + "GetSubscriber",
                    request_serializer=billing_pb2.GetSubscriberRequest.SerializeToString,
                    response_deserializer=billing_pb2.GetSubscriberResponse.FromString,
                ),
                # No deserializer: pages arrive as bytes and are passed on as bytes.
                "ListCallDetails": self._channel.unary_unary(
                    _SERVICE + "ListCallDetails",
                    request_serializer=billing_pb2.ListCallDetailsRequest.SerializeToString,
                    response_deserializer=None,
                ),
            }
        return self._rpcs[name]

    async def _call(self, name: str, request: Any) -> Any:
        try:
            return await self._rpc(name)(request, timeout=self.timeout)
        except (grpc.RpcError, grpc.aio.UsageError) as e:
            raise DependencyUnavailable("billing") from e

    async def close(self) -> None:
        channel, self._channel, self._rpcs = self._channel, None, {}
        if channel is not None:
            await channel.close()

    async def verify_service_password(self, msisdn: str, password: str) -> bool:
        req = billing_pb2.VerifyServicePasswordRequest(msisdn=msisdn, service_password=password)
        resp: billing_pb2.VerifyServicePasswordResponse = await self._call("VerifyServicePassword", req)
        return resp.valid

    async def get_subscriber(self, msisdn: str) -> Subscriber:
        resp: billing_pb2.GetSubscriberResponse = await self._call(
            "GetSubscriber", billing_pb2.GetSubscriberRequest(msisdn=msisdn)
        )
        if not resp.exists:
            return Subscriber(exists=False)
        return Subscriber(
            exists=True, sim_changed_at=_when(resp, "sim_changed_at"), ported_at=_when(resp, "ported_at")
        )

    async def call_detail_pages(self, msisdn: str, month: str) -> AsyncIterator[bytes]:
        """Yield serialized pages; the next page is fetched only when the consumer asks for it, so at
        most one page is held at a time."""
        token = ""
        while True:
            req = billing_pb2.ListCallDetailsRequest(
                msisdn=msisdn, month=month, page_size=self.page_size, page_token=token
            )
            raw: bytes = await self._call("ListCallDetails", req)
            try:
                next_token = billing_pb2.ListCallDetailsResponse.FromString(raw).next_page_token
            except DecodeError as e:
                raise DependencyUnavailable("billing") from e
            if next_token and next_token == token:  # a server stuck on one page would loop forever
                raise DependencyUnavailable("billing")
            yield raw
            if not next_token:
                return
            token = next_token
