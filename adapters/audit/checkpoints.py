"""Verified positions: where the last successful verification of a chain ended, signed, so that the
next (daily) verification reads only the events appended since: O(new events), not O(chain).

A verified position holds the seq, stream id and mac of the newest event a verification checked, when
it was checked, how many events that run checked and after which seq it started, and the key id; it
is signed with HMAC-SHA256 under a key derived by HKDF (its own label) from the audit key of that key
id, so someone with write access to Redis but without the audit key cannot forge or move it, and
after a key rotation an older position stays checkable while the retired key is in the keyring. It
lives next to the chain, under the chain's hash tag (`hg:audit:{main}:verified`).

A position that is malformed, whose signature fails, whose event changed, or whose event is gone
from the middle of the stream is reported (`IncrementalResult.rejected`, log `audit_verified_rejected`)
and never trusted: the run then starts from the retention checkpoint or from genesis, like a full
verification. A position beyond the end of the stream means the newest events were deleted (and the
head rewritten): that is a verdict (`deleted`), which a hash chain alone could not give.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import redis.asyncio as aioredis
import structlog
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from redis.exceptions import ResponseError

from adapters.audit.keys import KEY_PREFIX, OUTAGE, ChainKeys, entries, fields, head_and_checkpoint, seq_of
from adapters.audit.queries import _scan
from gateway.domain import audit_chain as ac
from gateway.domain.errors import DependencyUnavailable

log = structlog.get_logger("hallgate.audit")

VERIFIED_KEY_LABEL = b"hallgate/audit/verified-key/v1"  # HKDF info: a key of its own, not the chain's
VERIFIED_DOMAIN = b"hallgate/audit/verified/v1\x00"
VERIFIED = "verified"  # the anchor source of a run that starts after a verified position
PROGRESS_EVERY = 10_000

# KEYS: verified position, stream. ARGV: the stored position's sig as read ("" for none), the new
# position's stream id and mac, then its field, value, ... → 1 stored | 0 another verifier was first |
# -1 the event is not (or no longer) what was verified. Compare-and-set, so two verifiers never
# replace a newer position by an older one.
RECORD_LUA = """
local cur = redis.call('HGET', KEYS[1], 'sig') or ''
if cur ~= ARGV[1] then return 0 end
local e = redis.call('XRANGE', KEYS[2], ARGV[2], ARGV[2])
if #e == 0 then return -1 end
local f, mac = e[1][2], nil
for i = 1, #f, 2 do if f[i] == 'mac' then mac = f[i + 1] end end
if mac ~= ARGV[3] then return -1 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 4, #ARGV))
return 1
"""


def verified_key(chain: str, prefix: str = KEY_PREFIX) -> str:
    return f"{prefix}:{{{ac.check_chain_name(chain)}}}:verified"


def derive(key: bytes) -> bytes:
    """The signing key of verified positions, derived from an audit key (HKDF-SHA256, own label)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=VERIFIED_KEY_LABEL).derive(key)


@dataclass(frozen=True, slots=True)
class Position:
    """A verified position: the newest event a verification checked (seq, stream id, mac), when,
    how many events that run checked, after which seq it started, and the key id."""

    seq: int
    id: str
    mac: str
    at: str
    checked: int
    from_seq: int
    kid: str
    sig: str = ""

    def payload(self) -> dict[str, str]:
        return {"seq": str(self.seq), "id": self.id, "mac": self.mac, "at": self.at, "checked": str(self.checked),
                "from_seq": str(self.from_seq), "kid": self.kid}

    def signed(self, chain: str, keys: Mapping[str, bytes]) -> Position:
        return replace(self, sig=_sig(keys[self.kid], chain, self.payload()))

    def valid(self, chain: str, keys: Mapping[str, bytes]) -> bool:
        key = keys.get(self.kid)
        return key is not None and hmac.compare_digest(_sig(key, chain, self.payload()), self.sig)

    def as_fields(self) -> dict[str, str]:
        return {**self.payload(), "sig": self.sig}

    @classmethod
    def from_fields(cls, f: Mapping[str, str]) -> Position:
        """Raises ValueError when fields are missing or malformed."""
        try:
            numbers = [seq_of(f[name]) for name in ("seq", "checked", "from_seq")]
            if None in numbers:
                raise ValueError("a number is not a number")
            seq, checked, from_seq = (int(n or 0) for n in numbers)
            ac.parse_stream_id(f["id"])
            return cls(seq, f["id"], f["mac"], f["at"], checked, from_seq, f["kid"], f["sig"])
        except (KeyError, ValueError) as e:
            raise ValueError(f"malformed verified position: {e}") from None


def _sig(key: bytes, chain: str, payload: Mapping[str, str]) -> str:
    msg = VERIFIED_DOMAIN + chain.encode() + b"\x00" + ac.canonical(payload)
    return hmac.new(derive(key), msg, hashlib.sha256).hexdigest()


async def read(client: aioredis.Redis, chain: str, keys: Mapping[str, bytes]
               ) -> tuple[Position | None, str, str | None]:
    """(the stored position if it holds, why not if it does not, its raw sig for compare-and-set:
    "" when there is none, None when the key is not even a hash)."""
    try:
        raw = fields(await client.hgetall(verified_key(chain)))
    except ResponseError:  # not a hash (written by hand): as good as forged
        return None, "the verified position is not a hash", None
    if not raw:
        return None, "", ""
    try:
        pos = Position.from_fields(raw)
    except ValueError as e:
        return None, str(e), raw.get("sig", "")
    if not pos.valid(chain, keys):
        why = "unknown key id" if pos.kid not in keys else "signature does not match"
        return None, f"verified position at seq {pos.seq}: {why}", pos.sig
    return pos, "", pos.sig


async def record(client: aioredis.Redis, chain: str, keys: Mapping[str, bytes], pos: Position,
                 expected_sig: str | None = "") -> int:
    """Sign and store a position if the stored one's sig is still `expected_sig` ("" none, None a
    key that is not a hash) and its event is in the stream with that mac (RECORD_LUA's answer)."""
    k = ChainKeys.of(chain)
    vkey = verified_key(chain)
    if expected_sig is None:  # written by hand as another type: replace it
        await client.delete(vkey)
    args: list[str] = [expected_sig or "", pos.id, pos.mac]
    for name, value in pos.signed(chain, keys).as_fields().items():
        args += (name, value)
    return int(await client.eval(RECORD_LUA, 2, vkey, k.stream, *args))  # type: ignore[misc]


Progress = Callable[[int, int, float], None]  # (events checked, seq reached, seconds)


async def verify_incremental(client: aioredis.Redis, chain: str, keys: Mapping[str, bytes], kid: str, *,
                             full: bool = False, batch: int = 1000, progress: Progress | None = None,
                             every: int = PROGRESS_EVERY, now: datetime | None = None) -> ac.IncrementalResult:
    """Verify the events after the last verified position (or, with `full` or without a usable
    position, the whole chain from the retention checkpoint or genesis) and, when the chain holds,
    record a new verified position at the newest event checked, signed with key `kid`. `progress`
    is called every `every` events checked. Redis failures raise DependencyUnavailable("audit")."""
    try:
        return await _run(client, chain, keys, kid, full, batch, progress, every, now)
    except OUTAGE as e:
        raise DependencyUnavailable("audit") from e


async def _run(client: aioredis.Redis, chain: str, keys: Mapping[str, bytes], kid: str, full: bool, batch: int,
               progress: Progress | None, every: int, now: datetime | None) -> ac.IncrementalResult:
    ac.check_keys(keys, kid)
    k = ChainKeys.of(chain)
    head, cp_fields = await head_and_checkpoint(client, k)
    pos, rejected, stored_sig = await read(client, chain, keys)
    base = ac.anchor_from_checkpoint(chain, keys, cp_fields)
    if isinstance(base, ac.VerifyResult):  # a forged retention checkpoint is a verdict, as in `verify`
        return ac.IncrementalResult(base, rejected)
    anchor, low = base, "-"
    if pos is not None and pos.seq > base.seq:
        pipe = client.pipeline(transaction=False)
        pipe.xrange(k.stream, min=pos.id, max=pos.id, count=1)
        pipe.xrange(k.stream, count=1)
        pipe.xrevrange(k.stream, count=1)
        async with pipe:
            at_raw, first_raw, last_raw = await pipe.execute()
        at, first, last = entries(at_raw), entries(first_raw), entries(last_raw)
        if at:
            _, ev = at[0]
            if seq_of(ev.get("seq")) == pos.seq and ev.get("mac") == pos.mac and ac.mac_ok(chain, keys, ev):
                if not full:
                    anchor, low = ac.Anchor(pos.seq, pos.mac, VERIFIED), "(" + pos.id
            else:
                rejected = f"the event verified at seq {pos.seq} ({pos.id}) has changed since {pos.at}"
        elif first and ac.parse_stream_id(pos.id) < ac.parse_stream_id(first[0][0]):
            if not full:  # trimmed or moved out of Redis since: the signature vouches for it
                anchor, low = ac.Anchor(pos.seq, pos.mac, VERIFIED), "(" + pos.id
        elif not last or ac.parse_stream_id(pos.id) > ac.parse_stream_id(last[0][0]):
            end = seq_of(last[0][1].get("seq")) if last else base.seq
            missing = (end or 0) + 1
            result = ac.VerifyResult(False, 0, missing, None, ac.DELETED,
                                     f"seq {pos.seq} ({pos.id}) was verified at {pos.at}, but the stream ends "
                                     f"at seq {end if end is not None else '?'}", anchor=VERIFIED)
            log.error("audit_verify_broken", chain=chain, **result.as_dict())
            return ac.IncrementalResult(result, rejected)
        else:
            rejected = f"the event verified at seq {pos.seq} ({pos.id}) is gone from the stream"
    if rejected:
        log.warning("audit_verified_rejected", chain=chain, why=rejected)
    v = ac.Verifier(chain, keys, anchor, head)
    started = time.perf_counter()
    mark = every
    async for entry_id, entry in _scan(client, k.stream, low, "+", batch):
        v.feed(entry_id, entry)
        if progress is not None and v.checked >= mark:
            progress(v.checked, v.expected - 1 if v.expected is not None else 0, time.perf_counter() - started)
            mark += every
        if not v.wants_more:
            break
    result = v.result()
    if result.ok and full and pos is not None and rejected == "" and (result.last_seq or 0) < pos.seq:
        result = ac.VerifyResult(False, result.checked, (result.last_seq or 0) + 1, None, ac.DELETED,
                                 f"seq {pos.seq} was verified at {pos.at}, but the chain ends at seq "
                                 f"{result.last_seq}", last_seq=result.last_seq, last_id=result.last_id,
                                 anchor=result.anchor)
    positions = {"started_after_seq": anchor.seq, "checkpoint_seq": base.seq}
    if not result.ok:
        log.error("audit_verify_broken", chain=chain, **result.as_dict())
        return ac.IncrementalResult(result, rejected, **positions)
    recorded = None
    if v.checked and v.last_id and v.prev_mac:
        when = (now or datetime.now(UTC)).isoformat(timespec="milliseconds")
        new = Position(result.last_seq or 0, v.last_id, v.prev_mac, when, v.checked, anchor.seq, kid)
        if await record(client, chain, keys, new, stored_sig) == 1:
            recorded = new.seq
    through = recorded or (anchor.seq if anchor.source == VERIFIED else 0)
    return ac.IncrementalResult(result, rejected, recorded, verified_through_seq=through, **positions)
