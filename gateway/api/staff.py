"""StaffService over gRPC: staff sign-in on clerk, legal and audit terminals (R6)."""

from __future__ import annotations

import re

import grpc

from gateway.api.common import caller, duration
from gateway.domain import request_context, rules
from gateway.domain.staff import StaffDesk
from hallgate_pb.v1 import staff_pb2, staff_pb2_grpc

STAFF_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
PASSWORD_RE = re.compile(r"[\x20-\x7e]{1,128}")


def _check_common(v: rules.Violations, staff_id: str, password: str, field: str, code: str) -> None:
    v.check("staff_id", staff_id, STAFF_ID_RE, "letters, digits, - or _ (at most 32)")
    if not password:
        v.items.append((field, "is required"))
    elif len(password) > 128:
        v.items.append((field, "must be at most 128 characters"))
    rules.check_code(v, code, "totp_code")


class StaffServicer(staff_pb2_grpc.StaffServiceServicer):
    def __init__(self, desk: StaffDesk) -> None:
        self.desk = desk

    async def SignIn(self, request: staff_pb2.SignInRequest, context: grpc.aio.ServicerContext
                     ) -> staff_pb2.SignInResponse:
        v = rules.Violations()
        _check_common(v, request.staff_id, request.password, "password", request.totp_code)
        v.raise_if_any()
        call = request_context.current()
        call.staff_id = request.staff_id
        grant = await self.desk.sign_in(caller(), request.staff_id, request.password, request.totp_code)
        call.role = grant.role
        return staff_pb2.SignInResponse(staff_token=grant.token, role=grant.role,
                                        idle_timeout=duration(grant.idle_timeout))

    async def ChangePassword(self, request: staff_pb2.ChangePasswordRequest, context: grpc.aio.ServicerContext
                             ) -> staff_pb2.ChangePasswordResponse:
        v = rules.Violations()
        _check_common(v, request.staff_id, request.current_password, "current_password", request.totp_code)
        if not request.new_password:
            v.items.append(("new_password", "is required"))
        v.raise_if_any()
        request_context.current().staff_id = request.staff_id
        await self.desk.change_password(request.staff_id, request.current_password, request.new_password,
                                        request.totp_code)
        return staff_pb2.ChangePasswordResponse()

    async def SignOut(self, request: staff_pb2.SignOutRequest, context: grpc.aio.ServicerContext
                      ) -> staff_pb2.SignOutResponse:
        metadata = dict(context.invocation_metadata() or ())
        token = str(metadata.get("authorization", "")).removeprefix("Bearer ").strip()
        await self.desk.sign_out(token)
        return staff_pb2.SignOutResponse()
