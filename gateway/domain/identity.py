"""Who is calling: the channel, hall and terminal named by the client certificate's SPIFFE ID.

spiffe://<trust domain>/hall/<hall>/kiosk/<id>     a self-service kiosk
spiffe://<trust domain>/hall/<hall>/clerk/<id>     a clerk terminal at a hall counter
spiffe://<trust domain>/branch/<branch>/legal/<id> the branch office's legal department
spiffe://<trust domain>/branch/<branch>/audit/<id> the auditors
Anything else identifies nobody. The website (R9 way 2) has no certificate: a caller of the browser
listener without one is the `web` channel when the website is switched on (WEB_IDENTITY), never
anything more.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum


class Channel(StrEnum):
    KIOSK = "kiosk"
    CLERK = "clerk"
    LEGAL = "legal"
    AUDIT = "audit"
    WEB = "web"  # the operator's website: no client certificate (gateway/pipeline/web_gate.py)


SITE_OF = {Channel.KIOSK: "hall", Channel.CLERK: "hall", Channel.LEGAL: "branch", Channel.AUDIT: "branch"}
SEGMENT = r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}"
SPIFFE_RE = re.compile(rf"spiffe://(?P<td>[a-z0-9.-]+)/(?P<site>hall|branch)/(?P<hall>{SEGMENT})/"
                       rf"(?P<channel>kiosk|clerk|legal|audit)/(?P<id>{SEGMENT})")


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller. `terminal` is unique across the operator: `H001/clerk/T07`."""

    channel: Channel
    hall: str
    terminal: str
    uri: str
    serial: str = ""


@functools.lru_cache(maxsize=4096)  # terminals are few and call often; an Identity is immutable
def parse_spiffe(uri: str, trust_domain: str, serial: str = "") -> Identity | None:
    """The identity a SPIFFE ID names, or None if it is malformed, foreign or mixes site kinds."""
    m = SPIFFE_RE.fullmatch(uri)
    if m is None or m["td"] != trust_domain:
        return None
    channel = Channel(m["channel"])
    if SITE_OF[channel] != m["site"]:
        return None
    return Identity(channel, m["hall"], f"{m['hall']}/{channel.value}/{m['id']}", uri, serial)


# Every website visitor is this one terminal: a session made on the website is bound to it, so it is
# usable on the website only (its token lives in an HttpOnly cookie), never at a kiosk, and back.
WEB_IDENTITY = Identity(Channel.WEB, "web", "web/web/site", "")
