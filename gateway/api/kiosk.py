"""KioskService over gRPC: the self-service kiosk's call-list path (R9 way 1)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.protobuf import timestamp_pb2

from gateway.api.common import duration
from gateway.domain import request_context, rules
from gateway.domain.kiosk import KioskFlows
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc


class KioskServicer(kiosk_pb2_grpc.KioskServiceServicer):
    """Every handler validates all fields first, so bad input never reaches the rules."""

    def __init__(self, flows: KioskFlows) -> None:
        self.flows = flows
        s = flows.s
        self._code_answer = kiosk_pb2.RequestOneTimeCodeResponse(
            code_valid_for=duration(s.proof.code_ttl), resend_after=duration(s.proof.send_min_interval))

    async def RequestOneTimeCode(self, request: kiosk_pb2.RequestOneTimeCodeRequest,
                                 context: grpc.aio.ServicerContext) -> kiosk_pb2.RequestOneTimeCodeResponse:
        v = rules.Violations()
        msisdn = rules.check_msisdn(v, request.msisdn)
        v.raise_if_any()
        call = request_context.current()
        call.msisdn = msisdn
        call.reason = await self.flows.request_code(msisdn)
        return self._code_answer

    async def Authenticate(self, request: kiosk_pb2.AuthenticateRequest,
                           context: grpc.aio.ServicerContext) -> kiosk_pb2.AuthenticateResponse:
        v = rules.Violations()
        msisdn = rules.check_msisdn(v, request.msisdn)
        password = rules.check_service_password(v, request.service_password)
        code = rules.check_code(v, request.one_time_code)
        v.raise_if_any()
        call = request_context.current()
        call.msisdn = msisdn
        grant = await self.flows.authenticate(msisdn, password, code, terminal=call.terminal)
        expires_at = timestamp_pb2.Timestamp()
        expires_at.FromDatetime(grant.expires_at)
        return kiosk_pb2.AuthenticateResponse(access_token=grant.token, idle_timeout=duration(grant.idle_timeout),
                                              expires_at=expires_at)

    async def ListCallDetails(self, request: kiosk_pb2.ListCallDetailsRequest,
                              context: grpc.aio.ServicerContext) -> AsyncIterator[kiosk_pb2.ListCallDetailsResponse]:
        v = rules.Violations()
        token = rules.check_token(v, request.access_token)
        month = rules.check_month(v, request.month, self.flows.today(), self.flows.s.retention_months)
        v.raise_if_any()
        call = request_context.current()
        session = await self.flows.session(token, terminal=call.terminal)
        call.msisdn = session.msisdn
        async for page in self.flows.call_detail_pages(session, month):
            # A billing page is wire-compatible with this message; re-reading it as the public type
            # and discarding unknown fields lets only the fields the public API declares through.
            chunk = kiosk_pb2.ListCallDetailsResponse.FromString(page)
            chunk.DiscardUnknownFields()
            if chunk.records:
                if not call.records:  # the owner is told as the release begins, however it ends
                    await self.flows.notify_release(session, month)
                call.records += len(chunk.records)
                yield chunk

    async def ListAccessHistory(self, request: kiosk_pb2.ListAccessHistoryRequest,
                                context: grpc.aio.ServicerContext
                                ) -> AsyncIterator[kiosk_pb2.ListAccessHistoryResponse]:
        v = rules.Violations()
        token = rules.check_token(v, request.access_token)
        v.raise_if_any()
        call = request_context.current()
        session = await self.flows.session(token, terminal=call.terminal)
        call.msisdn = session.msisdn
        for when, hall, channel, what, outcome, purpose in await self.flows.history(session):
            t = timestamp_pb2.Timestamp()
            t.FromDatetime(when)
            call.records += 1
            yield kiosk_pb2.ListAccessHistoryResponse(record=kiosk_pb2.AccessRecord(
                time=t, hall=hall, channel=channel, what=what, outcome=outcome, purpose=purpose))

    async def EndSession(self, request: kiosk_pb2.EndSessionRequest,
                         context: grpc.aio.ServicerContext) -> kiosk_pb2.EndSessionResponse:
        v = rules.Violations()
        token = rules.check_token(v, request.access_token)
        v.raise_if_any()
        await self.flows.end_session(token, request_context.current().terminal)
        return kiosk_pb2.EndSessionResponse()
