"""The browser listener's extra checks, enforced by the Authorizer with the policy table.

Every call that came through the browser listener (CallFacts.browser) is checked for where it came
from, before anything else is looked at: an Origin header, if any, must be the site the request was
addressed to or one of the allowed origins, and the CSRF defence must hold (the X-CSRF-Token header
equals the CSRF cookie: a double submit a cross-site page cannot make, since it can neither read our
cookie nor send that header cross-origin past our CORS). Then, for the website channel only (callers
with no certificate, so anyone on the internet): every call counts against a per-address limit, and
the calls the policy table marks `bot_check` (they send an SMS or test a password) count against a
tighter one and need a solved bot challenge. Counting comes first, so a refused call still counts.
Every refusal here is on record like any other, with the channel already known.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain.client_address import throttle_key
from gateway.domain.errors import PermissionDenied, TooManyRequests
from gateway.domain.identity import WEB_IDENTITY, Identity
from gateway.domain.policy import Rule
from gateway.domain.ports import Challenge, Throttle
from gateway.pipeline.facts import CallFacts


@dataclass(frozen=True, slots=True)
class WebConfig:
    """`enabled` switches the website channel on; `origins` are the allowed origins beside each
    request's own site; the limits are per caller address (throttle_key) and window."""

    enabled: bool = False
    origins: frozenset[str] = frozenset()
    calls_per_minute: int = 60
    proofs_per_hour: int = 20


class WebGate:
    def __init__(self, config: WebConfig, throttle: Throttle | None = None, challenge: Challenge | None = None
                 ) -> None:
        if config.enabled and (throttle is None or challenge is None):
            raise ValueError("the website channel needs a throttle and a bot challenge")
        self.config = config
        self.throttle = throttle
        self.challenge = challenge

    def identity(self, facts: CallFacts) -> Identity | None:
        """The website's identity for a browser call without a client certificate, when it is on."""
        if self.config.enabled and facts.browser is not None and not facts.tls:
            return WEB_IDENTITY
        return None

    def check_origin(self, facts: CallFacts) -> None:
        """Origin allow-list and CSRF, for every browser call whatever its channel."""
        browser = facts.browser
        if browser is None:
            return
        if browser.origin and browser.origin != browser.site and browser.origin not in self.config.origins:
            raise PermissionDenied("origin_not_allowed")
        if not browser.csrf:
            raise PermissionDenied("csrf")

    async def admit(self, facts: CallFacts, rule: Rule | None) -> None:
        """The website's limits and bot challenge (call only for the web channel)."""
        assert facts.browser is not None and self.throttle is not None and self.challenge is not None
        client = throttle_key(facts.browser.client)
        wait = await self.throttle.hit(f"web:calls:{client}", self.config.calls_per_minute, 60)
        if rule is not None and rule.bot_check:
            wait = max(wait, await self.throttle.hit(f"web:proofs:{client}", self.config.proofs_per_hour, 3600))
        if wait > 0:
            raise TooManyRequests("web_throttled", wait)
        if rule is not None and rule.bot_check and not (
                facts.browser.challenge and await self.challenge.verify(facts.browser.challenge, facts.browser.client)):
            raise PermissionDenied("challenge_failed")
