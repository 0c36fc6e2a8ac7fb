"""Who is calling, and may they make this call: the policy table (gateway/domain/policy.py) enforced.

Identity comes from the client certificate's SPIFFE ID (mutual TLS); on the browser listener
without a certificate it is the website (when switched on, gateway/pipeline/web_gate.py, which also
checks every browser call's origin and CSRF defence, and the website's limits and bot challenge);
in development mode only, from the `x-hallgate-dev-identity` header. Then, per the policy row: the channel, the staff
session (`authorization: Bearer …`, bound to this terminal) and its role, and the customer
session named by the request's `customer_session` field (bound to this clerk and terminal), its
proof and the purpose it was opened for (R2). Everything it learns goes into the call context, so
the audit trail records who asked, and for a call refused in a genuine session, about whom and why.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from gateway.domain import rules
from gateway.domain.errors import DependencyUnavailable, PermissionDenied, Unauthenticated
from gateway.domain.identity import Channel, Identity, parse_spiffe
from gateway.domain.policy import POLICY, Proof, Role, Rule
from gateway.domain.ports import Revocations, Sessions, StaffDirectory
from gateway.domain.request_context import CallContext
from gateway.pipeline.decoding import check_decoded
from gateway.pipeline.facts import CallFacts
from gateway.pipeline.web_gate import WebConfig, WebGate

DEV_IDENTITY_HEADER = "x-hallgate-dev-identity"
HALL_CHANNELS = {Channel.KIOSK, Channel.CLERK}


@dataclass(frozen=True, slots=True)
class AccessConfig:
    """What the authoriser needs of the settings."""

    trust_domain: str
    insecure_dev: bool = False
    staff_idle: float = 900
    customer_session_idle: float = 600


@functools.lru_cache(maxsize=4096)
def _serial(pem: bytes) -> str:
    return format(x509.load_pem_x509_certificate(pem).serial_number, "x")


def identify(facts: CallFacts, config: AccessConfig) -> Identity | None:
    """The caller a verified client certificate names; without TLS, the development header, and
    only in development mode. A TLS peer is identified by its certificate alone."""
    if facts.tls:
        serial = _serial(facts.peer_cert_pem) if facts.peer_cert_pem else ""
        for uri in facts.peer_uris:
            found = parse_spiffe(uri, config.trust_domain, serial)
            if found:
                return found
        return None
    if facts.browser is not None:
        return None  # the website's identity, if any, is the WebGate's to give
    if config.insecure_dev and DEV_IDENTITY_HEADER in facts.metadata:
        return parse_spiffe(str(facts.metadata[DEV_IDENTITY_HEADER]), config.trust_domain)
    return None


class Authorizer:
    """Deny by default: a method without a policy row is refused, whoever asks."""

    def __init__(self, config: AccessConfig, sessions: Sessions, revocations: Revocations,
                 directory: StaffDirectory, policy: dict[str, Rule] | None = None, web: WebGate | None = None
                 ) -> None:
        self.config = config
        self.web = web if web is not None else WebGate(WebConfig())
        self.sessions = sessions
        self.directory = directory
        self.revocations = revocations
        self.policy = POLICY if policy is None else policy

    async def authorize(self, facts: CallFacts, call: CallContext, request: Any) -> None:
        identity = identify(facts, self.config) or self.web.identity(facts)
        if identity is None:
            raise Unauthenticated("no_identity")
        call.channel, call.hall, call.terminal = identity.channel.value, identity.hall, identity.terminal
        self.web.check_origin(facts)
        rule = self.policy.get(facts.method)
        if identity.channel == Channel.WEB:
            await self.web.admit(facts, rule)
        elif await self._revoked(identity):
            raise Unauthenticated("revoked_terminal")
        if rule is None:
            raise PermissionDenied("no_policy")
        if identity.channel not in rule.channels:
            hall_to_legal = rule.channels == {Channel.LEGAL} and identity.channel in HALL_CHANNELS
            raise PermissionDenied("legal_via_hall" if hall_to_legal else "wrong_channel")
        if rule.roles:
            await self._staff(rule, identity, facts, call)
        if rule.proof in (Proof.CUSTOMER_SESSION, Proof.ID_DOCUMENT_SESSION):
            await self._customer(rule, identity, request, call)

    async def _revoked(self, identity: Identity) -> bool:
        """The deny-list's answer. It fails closed: not loaded yet (Redis down since the start), it
        raises DependencyUnavailable; then this call tries to load it once (concurrent calls share
        the attempt) and is refused UNAVAILABLE if that fails too, never let through unchecked."""
        try:
            return self.revocations.revoked(identity.terminal, identity.serial)
        except DependencyUnavailable:
            await self.revocations.refresh()
            return self.revocations.revoked(identity.terminal, identity.serial)

    async def _staff(self, rule: Rule, identity: Identity, facts: CallFacts, call: CallContext) -> None:
        bearer = str(facts.metadata.get("authorization", ""))
        token = bearer.removeprefix("Bearer ").strip()
        if not bearer.startswith("Bearer ") or not rules.TOKEN_RE.fullmatch(token):
            raise Unauthenticated("staff_sign_in_required")
        digest = rules.token_digest(token)
        staff = await self.sessions.staff(digest, self.config.staff_idle)
        if staff is None or staff.terminal != identity.terminal:
            raise Unauthenticated("staff_sign_in_required")
        if not await self.directory.is_active(staff.staff_id):  # disabled since signing in
            await self.sessions.end("staff", digest)
            raise Unauthenticated("staff_sign_in_required")
        call.staff_id, call.role, call.staff_session = staff.staff_id, staff.role, digest
        if Role(staff.role) not in rule.roles:
            raise PermissionDenied("role")

    async def _customer(self, rule: Rule, identity: Identity, request: Any, call: CallContext) -> None:
        check_decoded(request)  # the session is named inside the request
        v = rules.Violations()
        token = rules.check_token(v, getattr(request, "customer_session", ""), "customer_session")
        v.raise_if_any()
        session = await self.sessions.customer(rules.token_digest(token), self.config.customer_session_idle)
        if (session is None or session.staff_id != call.staff_id or session.terminal != identity.terminal
                or (session.staff_session and session.staff_session != call.staff_session)):
            raise PermissionDenied("customer_session_required")  # not this sign-in's: ended with the one that opened it
        # This clerk's own session: from here a refusal is on record with its subscriber and purpose.
        call.proof, call.purpose, call.msisdn = session.proof, session.purpose, session.msisdn
        if rule.purposes is None or (rule.purposes and session.purpose not in rule.purposes):
            raise PermissionDenied("purpose_mismatch")
        if rule.proof == Proof.ID_DOCUMENT_SESSION and session.proof != "id_document":
            raise PermissionDenied("id_document_required")
        call.customer = session
