"""Who is calling, and may they make this call: the policy table (gateway/policy.py) enforced.

Identity comes from the client certificate's SPIFFE ID (mutual TLS), or, in development mode
only, from the `x-hallgate-dev-identity` header. Then, per the policy row: the channel, the staff
session (`authorization: Bearer …`, bound to this terminal) and its role, and the customer
session named by the request's `customer_session` field (bound to this clerk and terminal).
Everything it learns goes into the call context, so the audit trail records who asked.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import grpc
from cryptography import x509

from gateway import request_context, rules
from gateway.errors import InvalidArgument, PermissionDenied, Unauthenticated
from gateway.identity import Channel, Identity, parse_spiffe
from gateway.interceptors.decoding import Malformed
from gateway.interceptors.wrapping import Streaming, Unary, messages, wrap
from gateway.policy import POLICY, Proof, Role, Rule
from gateway.ports import Revocations, Sessions, StaffDirectory
from gateway.request_context import CallContext
from gateway.settings import Settings

DEV_IDENTITY_HEADER = "x-hallgate-dev-identity"
HALL_CHANNELS = {Channel.KIOSK, Channel.CLERK}


@functools.lru_cache(maxsize=4096)
def _serial(pem: bytes) -> str:
    return format(x509.load_pem_x509_certificate(pem).serial_number, "x")


class AuthorizationInterceptor(grpc.aio.ServerInterceptor):
    """Inside the audit interceptor, so every refusal is audited with whatever identity was found."""

    def __init__(self, settings: Settings, sessions: Sessions, revocations: Revocations, directory: StaffDirectory,
                 policy: dict[str, Rule] | None = None) -> None:
        self.s = settings
        self.sessions = sessions
        self.directory = directory
        self.revocations = revocations
        self.policy = POLICY if policy is None else policy

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or not details.method.startswith("/hallgate."):
            return handler
        rule = self.policy.get(details.method)
        metadata = dict(details.invocation_metadata or ())  # type: ignore[attr-defined]
        return wrap(handler, lambda b: self._unary(b, rule, metadata),
                    lambda b: self._streaming(b, rule, metadata))

    def _unary(self, behaviour: Unary, rule: Rule | None, metadata: dict[str, Any]) -> Unary:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self.authorize(rule, context, metadata, request)
            return await behaviour(request, context)

        return call

    def _streaming(self, behaviour: Streaming, rule: Rule | None, metadata: dict[str, Any]) -> Streaming:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncGenerator[Any, None]:
            await self.authorize(rule, context, metadata, request)
            async with messages(behaviour, request, context) as inner:
                async for message in inner:
                    yield message

        return call

    def identify(self, context: grpc.aio.ServicerContext, metadata: dict[str, Any]) -> Identity | None:
        auth = context.auth_context()
        if auth.get("transport_security_type") == [b"ssl"]:
            # A TLS peer is identified by its certificate alone, whatever the settings or headers say.
            uris: Sequence[bytes] = auth.get("peer_spiffe_id") or auth.get("x509_subject_alternative_name") or ()
            pem = (auth.get("x509_pem_cert") or [b""])[0]
            serial = _serial(pem) if pem else ""
            for uri in uris:
                found = parse_spiffe(uri.decode(errors="replace"), self.s.trust_domain, serial)
                if found:
                    return found
            return None
        if self.s.insecure_dev and DEV_IDENTITY_HEADER in metadata:
            return parse_spiffe(str(metadata[DEV_IDENTITY_HEADER]), self.s.trust_domain)
        return None

    async def authorize(self, rule: Rule | None, context: grpc.aio.ServicerContext, metadata: dict[str, Any],
                        request: Any) -> None:
        call = request_context.current()
        identity = self.identify(context, metadata)
        if identity is None:
            raise Unauthenticated("no_identity")
        call.channel, call.hall, call.terminal = identity.channel.value, identity.hall, identity.terminal
        if self.revocations.revoked(identity.terminal, identity.serial):
            raise Unauthenticated("revoked_terminal")
        if rule is None:
            raise PermissionDenied("no_policy")  # deny by default
        if identity.channel not in rule.channels:
            hall_to_legal = rule.channels == {Channel.LEGAL} and identity.channel in HALL_CHANNELS
            raise PermissionDenied("legal_via_hall" if hall_to_legal else "wrong_channel")
        if rule.roles:
            await self._staff(rule, identity, metadata, call)
        if rule.proof in (Proof.CUSTOMER_SESSION, Proof.ID_DOCUMENT_SESSION):
            await self._customer(rule, identity, request, call)

    async def _staff(self, rule: Rule, identity: Identity, metadata: dict[str, Any], call: CallContext) -> None:
        bearer = str(metadata.get("authorization", ""))
        token = bearer.removeprefix("Bearer ").strip()
        if not bearer.startswith("Bearer ") or not rules.TOKEN_RE.fullmatch(token):
            raise Unauthenticated("staff_sign_in_required")
        staff = await self.sessions.staff(rules.token_digest(token), self.s.staff_idle)
        if staff is None or staff.terminal != identity.terminal:
            raise Unauthenticated("staff_sign_in_required")
        if not await self.directory.is_active(staff.staff_id):  # disabled since signing in
            await self.sessions.end("staff", rules.token_digest(token))
            raise Unauthenticated("staff_sign_in_required")
        call.staff_id, call.role = staff.staff_id, staff.role
        if Role(staff.role) not in rule.roles:
            raise PermissionDenied("role")

    async def _customer(self, rule: Rule, identity: Identity, request: Any, call: CallContext) -> None:
        if isinstance(request, Malformed):
            raise InvalidArgument(request.violations)
        v = rules.Violations()
        token = rules.check_token(v, getattr(request, "customer_session", ""), "customer_session")
        v.raise_if_any()
        session = await self.sessions.customer(rules.token_digest(token), self.s.customer_session_idle)
        if session is None or session.staff_id != call.staff_id or session.terminal != identity.terminal:
            raise PermissionDenied("customer_session_required")
        if rule.proof == Proof.ID_DOCUMENT_SESSION and session.proof != "id_document":
            raise PermissionDenied("id_document_required")
        call.customer, call.proof = session, session.proof
        call.msisdn = session.msisdn
