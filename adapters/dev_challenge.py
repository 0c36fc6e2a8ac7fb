"""The development bot challenge (gateway/domain/ports.py, Challenge): told by a setting to pass
every solved token or to fail every one, so the website's flow and its refusal can both be tried
without a vendor. Production plugs a vendor's verifier in its place (docs/browser.md, Bot defence);
the gateway refuses to start the website with this one outside development mode."""

from __future__ import annotations

MODES = ("dev-pass", "dev-fail")


class DevChallenge:
    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"web_challenge {mode!r}: the development challenge is one of {', '.join(MODES)}")
        self.passes = mode == "dev-pass"

    async def verify(self, token: str, client: str) -> bool:
        return self.passes and bool(token)
