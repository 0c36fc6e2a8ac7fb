"""The gateway's Billing port over gRPC: deadlines on every call, every failure fails closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import grpc
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2

from gateway.domain.errors import DependencyUnavailable, Unauthenticated
from gateway.domain.ports import CustomerProfile, Subscriber
from hallgate_pb.billing.v1 import billing_pb2

_SERVICE = "/hallgate.billing.v1.BillingService/"
_DOCUMENT_ENUMS = {
    "resident_id_card": billing_pb2.DOCUMENT_TYPE_RESIDENT_ID_CARD,
    "passport": billing_pb2.DOCUMENT_TYPE_PASSPORT,
}
_DOCUMENT_TYPES = {v: k for k, v in _DOCUMENT_ENUMS.items()}
_SEXES = {billing_pb2.SEX_FEMALE: "female", billing_pb2.SEX_MALE: "male"}
# Unary calls with protobuf messages both ways: name -> (request class, response class).
_UNARY: dict[str, tuple[Any, Any]] = {
    "VerifyServicePassword": (billing_pb2.VerifyServicePasswordRequest, billing_pb2.VerifyServicePasswordResponse),
    "GetSubscriber": (billing_pb2.GetSubscriberRequest, billing_pb2.GetSubscriberResponse),
    "VerifyOwnerDocument": (billing_pb2.VerifyOwnerDocumentRequest, billing_pb2.VerifyOwnerDocumentResponse),
    "GetCustomerProfile": (billing_pb2.GetCustomerProfileRequest, billing_pb2.GetCustomerProfileResponse),
    "SetServicePassword": (billing_pb2.SetServicePasswordRequest, billing_pb2.SetServicePasswordResponse),
}


def _when(
    resp: billing_pb2.GetSubscriberResponse, field: Literal["sim_changed_at", "ported_at"]
) -> datetime | None:
    if not resp.HasField(field):
        return None
    ts: Timestamp = getattr(resp, field)
    return ts.ToDatetime(tzinfo=UTC)


async def _uncancelled(call: Any) -> Any:
    """The call's answer. If the caller goes away meanwhile (a kiosk cancels its call list), only
    its wait ends: the call is left to finish within its deadline and its answer dropped, and
    nothing after it is asked for. Cancelling a grpc.aio call while it is in flight leaks its
    batch's native memory (grpc/grpc#43360, open): about 3 kB a cancelled call list. (As
    `asyncio.shield`, without the task shield makes to await a call that is no future.)"""
    if not call.done():
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def done(_: Any) -> None:
            if not finished.done():
                finished.set_result(None)

        call.add_done_callback(done)
        await finished
    return await call


class GrpcBilling:
    """Implements gateway.domain.ports.Billing. The channel is made on first use, inside the running loop
    that will use it (a grpc.aio channel is bound to one event loop)."""

    def __init__(self, target: str, timeout: float = 3.0, page_size: int = 1000,
                 credentials: grpc.ChannelCredentials | None = None, server_name: str = "",
                 renew: Callable[[], grpc.ChannelCredentials | None] | None = None) -> None:
        """`credentials`: TLS (gateway/runtime/billing_link.py makes them), None for plaintext;
        `server_name`: the name billing's certificate must carry, if not the target's host;
        `renew`: asked before each call, cheaply, for credentials that replace these (a renewed
        client certificate, a new CA bundle), or None to keep them."""
        self.target = target
        self.timeout = timeout
        self.page_size = page_size
        self.credentials = credentials
        self.server_name = server_name
        self._renew = renew
        self._channel: Any = None
        self._rpcs: dict[str, Any] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    # Short reconnect backoff: a billing that comes back is used (and reported ready) within half
    # a second, instead of after gRPC's default backoff of up to two minutes. (gRPC reads the
    # "min" as the connection attempt's own timeout: one second, enough for a handshake.)
    OPTIONS = (("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 1000),
               ("grpc.max_reconnect_backoff_ms", 500))

    def _rpc(self, name: str) -> Any:
        if self._renew is not None and (renewed := self._renew()) is not None:
            self._retire()
            self.credentials = renewed
        if self._channel is None:
            if self.credentials is None:
                self._channel = grpc.aio.insecure_channel(self.target, options=list(self.OPTIONS))
            else:
                options: list[tuple[str, Any]] = [*self.OPTIONS]
                if self.server_name:
                    options.append(("grpc.ssl_target_name_override", self.server_name))
                self._channel = grpc.aio.secure_channel(self.target, self.credentials, options=options)
            self._rpcs = {
                rpc: self._channel.unary_unary(
                    _SERVICE + rpc, request_serializer=req.SerializeToString, response_deserializer=resp.FromString
                )
                for rpc, (req, resp) in _UNARY.items()
            }
            # No deserializer: pages arrive as bytes and are passed on as bytes.
            self._rpcs["ListCallDetails"] = self._channel.unary_unary(
                _SERVICE + "ListCallDetails",
                request_serializer=billing_pb2.ListCallDetailsRequest.SerializeToString,
                response_deserializer=None,
            )
            self._rpcs["Check"] = self._channel.unary_unary(
                "/grpc.health.v1.Health/Check", request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString)
        return self._rpcs[name]

    async def probe(self, seconds: float = 0.5) -> bool:
        """Does billing answer now, on the channel the calls use? Any answer from the server counts
        (one without a health service says UNIMPLEMENTED); silence or no connection does not."""
        try:
            resp = await self._rpc("Check")(health_pb2.HealthCheckRequest(), timeout=seconds)
        except grpc.aio.AioRpcError as e:
            return e.code() == grpc.StatusCode.UNIMPLEMENTED
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)

    async def _call(self, name: str, request: Any, not_found: Exception | None = None) -> Any:
        """One call within the deadline. Every failure is DependencyUnavailable, except NOT_FOUND
        when the caller names what that status means for it (`not_found`)."""
        try:
            return await _uncancelled(self._rpc(name)(request, timeout=self.timeout))
        except grpc.aio.AioRpcError as e:
            if not_found is not None and e.code() == grpc.StatusCode.NOT_FOUND:
                raise not_found from e
            raise DependencyUnavailable("billing") from e
        except (grpc.RpcError, grpc.aio.UsageError) as e:
            raise DependencyUnavailable("billing") from e

    def _retire(self) -> None:
        """New calls go over a new channel; the old one closes once its calls are done (each has
        the billing deadline, so that is the grace)."""
        channel, self._channel, self._rpcs = self._channel, None, {}
        if channel is not None:
            task = asyncio.get_running_loop().create_task(channel.close(grace=self.timeout))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def close(self) -> None:
        channel, self._channel, self._rpcs = self._channel, None, {}
        if channel is not None:
            await channel.close()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

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

    async def verify_owner_document(self, msisdn: str, document_type: str, document_number: str, name: str) -> bool:
        """True only when billing says the document and name are the number's registered owner's.
        A document type billing has no word for is no one's document: False without asking."""
        kind = _DOCUMENT_ENUMS.get(document_type)
        if kind is None:
            return False
        req = billing_pb2.VerifyOwnerDocumentRequest(
            msisdn=msisdn, document_type=kind, document_number=document_number, name=name
        )
        resp: billing_pb2.VerifyOwnerDocumentResponse = await self._call("VerifyOwnerDocument", req)
        return resp.match

    async def get_customer_profile(self, msisdn: str) -> CustomerProfile | None:
        """The owner's full profile (SIM data included: internal only, R7), None for unknown numbers."""
        resp: billing_pb2.GetCustomerProfileResponse = await self._call(
            "GetCustomerProfile", billing_pb2.GetCustomerProfileRequest(msisdn=msisdn)
        )
        if not resp.exists:
            return None
        return CustomerProfile(
            name=resp.name,
            document_type=_DOCUMENT_TYPES.get(resp.document_type, ""),
            document_number=resp.document_number,
            birth_date=resp.birth_date,
            sex=_SEXES.get(resp.sex, ""),
            province=resp.address.province,
            city=resp.address.city,
            district=resp.address.district,
            street=resp.address.street,
            plan_name=resp.plan_name,
            account_status=resp.account_status,
            iccid=resp.iccid,
            imsi=resp.imsi,
        )

    async def set_service_password(self, msisdn: str, new_password: str) -> None:
        """Replace the service password. Unauthenticated("unknown_number") if billing does not know
        the number; DependencyUnavailable for any other failure."""
        req = billing_pb2.SetServicePasswordRequest(msisdn=msisdn, new_service_password=new_password)
        await self._call("SetServicePassword", req, not_found=Unauthenticated("unknown_number"))

    async def call_detail_pages(self, msisdn: str, month: str) -> AsyncIterator[bytes]:
        """Yield serialized pages; the next page is fetched only when the consumer asks for it (the
        call pipeline asks for it before the page in hand leaves, so at most two are held)."""
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
