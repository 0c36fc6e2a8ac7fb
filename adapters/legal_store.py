"""Legal requests in Redis: one hash per request, its history as a list, and index sets.

Creating a request and every transition are single Lua scripts, so the request, its history and
the indexes always change together, and a transition applies only to the version it was computed
from (optimistic concurrency): of two approvals or two fulfilments racing, exactly one wins.
Every key carries the hash tag `{legal}`, so the scripts stay in one Redis Cluster slot.

There is deliberately no index by target number: nothing keyed by a subscriber's number is
written here (no tipping off, minimal data).

    hg:{legal}:req:<id>            hash     the request (see _fields)
    hg:{legal}:req:<id>:history    list     JSON transitions, oldest first
    hg:{legal}:all                 zset     every request id, scored by registration time (ms)
    hg:{legal}:state:<state>       set      request ids by current state
    hg:{legal}:case:<sha256>       set      by case number (sha256 of gateway.domain.legal.index_key)
    hg:{legal}:agency:<sha256>     set      by agency name (likewise)

Disposal (R8, gateway/domain/retention.py): `closed_due` finds closed requests whose closing (the
last history entry) is before a cutoff, `dispose` removes a closed request with its history and its
index entries in one script (an open one never), and `letters_in_use` says which letters requests
still kept reference.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import secrets
from collections.abc import Collection
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from adapters.redis_state import guarded
from gateway.domain.legal import (
    Action,
    AgencyKind,
    AgencyLevel,
    Category,
    LegalRequest,
    Officer,
    State,
    Transition,
    index_key,
)

PREFIX = "hg:{legal}:"

# KEYS: request, history, all, state set, case set, agency set.
# ARGV: id, score ms, history entry, field/value pairs… Returns 1, or 0 if the id is taken.
CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
redis.call('SADD', KEYS[6], ARGV[1])
return 1
"""

# KEYS: request, history, from-state set, to-state set.
# ARGV: id, expected version, expected state, history entry, field/value pairs…
# Returns 1 (done), 0 (no such request), -1 (it moved on: nothing changed).
TRANSITION = """
local cur = redis.call('HMGET', KEYS[1], 'version', 'state')
if not cur[1] then return 0 end
if cur[1] ~= ARGV[2] or cur[2] ~= ARGV[3] then return -1 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
return 1
"""

# KEYS: all, scratch, filter sets… ARGV: offset, count. Ids newest first.
LIST = """
local first, last = tonumber(ARGV[1]), tonumber(ARGV[1]) + tonumber(ARGV[2]) - 1
if #KEYS == 2 then return redis.call('ZREVRANGE', KEYS[1], first, last) end
local args = {KEYS[2], #KEYS - 1, KEYS[1]}
for i = 3, #KEYS do args[#args + 1] = KEYS[i] end
args[#args + 1] = 'WEIGHTS'
args[#args + 1] = 1
for i = 3, #KEYS do args[#args + 1] = 0 end
redis.call('ZINTERSTORE', unpack(args))
local ids = redis.call('ZREVRANGE', KEYS[2], first, last)
redis.call('DEL', KEYS[2])
return ids
"""


# KEYS: request, history, all, state set, case set, agency set. ARGV: id, expected state, closed states…
# Returns 1 (destroyed), 0 (already gone: a script is atomic, so its indexes went with it), -1 (not in
# the expected closed state: nothing changed). An open request is never destroyed.
DISPOSE = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 0 end
if st ~= ARGV[2] then return -1 end
local closed = false
for i = 3, #ARGV do if ARGV[i] == st then closed = true end end
if not closed then return -1 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('SREM', KEYS[5], ARGV[1])
redis.call('SREM', KEYS[6], ARGV[1])
return 1
"""


def request_key(request_id: str) -> str:
    return f"{PREFIX}req:{request_id}"


def history_key(request_id: str) -> str:
    return f"{PREFIX}req:{request_id}:history"


def state_key(state: State) -> str:
    return f"{PREFIX}state:{state.value}"


def _digest(value: str) -> str:
    return hashlib.sha256(index_key(value).encode()).hexdigest()


def case_key(case_number: str) -> str:
    return f"{PREFIX}case:{_digest(case_number)}"


def agency_key(agency_name: str) -> str:
    return f"{PREFIX}agency:{_digest(agency_name)}"


ALL_KEY = f"{PREFIX}all"


def _when(t: datetime | None) -> str:
    return "" if t is None else t.isoformat()


def _parse_when(s: str) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def _fields(r: LegalRequest) -> dict[str, str | bytes]:
    return {
        "request_id": r.request_id, "state": r.state.value, "version": str(r.version),
        "agency_kind": r.agency_kind.value, "agency_name": r.agency_name, "agency_level": r.agency_level.value,
        "letter_reference": r.letter_reference, "letter_date": r.letter_date,
        "letter_media_type": r.letter_media_type, "letter_sha256": r.letter_sha256,
        "letter_size": str(r.letter_size), "legal_basis": r.legal_basis, "case_number": r.case_number,
        "officers": json.dumps([[o.name, o.badge_number] for o in r.officers], ensure_ascii=False),
        "targets": json.dumps(list(r.targets)), "categories": json.dumps([c.value for c in r.categories]),
        "window_start": _when(r.window_start), "window_end": _when(r.window_end),
        "registered_by": r.registered_by, "registered_at": _when(r.registered_at),
        "approved_by": r.approved_by, "approved_at": _when(r.approved_at),
        "delivery_id": r.delivery_id, "fulfilment_started_at": _when(r.fulfilment_started_at),
        "fulfilled_by": r.fulfilled_by, "manifest": r.manifest, "manifest_signature": r.manifest_signature,
        "manifest_key_id": r.manifest_key_id,
    }


def _from_fields(raw: dict[Any, Any]) -> LegalRequest:
    b = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
    f = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in b.items()
         if k not in ("manifest", "manifest_signature")}
    start, end, registered = (_parse_when(f[k]) for k in ("window_start", "window_end", "registered_at"))
    assert start is not None and end is not None and registered is not None
    return LegalRequest(
        request_id=f["request_id"], state=State(f["state"]), version=int(f["version"]),
        agency_kind=AgencyKind(f["agency_kind"]), agency_name=f["agency_name"],
        agency_level=AgencyLevel(f["agency_level"]), letter_reference=f["letter_reference"],
        letter_date=f["letter_date"], letter_media_type=f["letter_media_type"], letter_sha256=f["letter_sha256"],
        letter_size=int(f["letter_size"]), legal_basis=f["legal_basis"], case_number=f["case_number"],
        officers=tuple(Officer(n, badge) for n, badge in json.loads(f["officers"])),
        targets=tuple(json.loads(f["targets"])), categories=tuple(Category(c) for c in json.loads(f["categories"])),
        window_start=start, window_end=end, registered_by=f["registered_by"], registered_at=registered,
        approved_by=f["approved_by"], approved_at=_parse_when(f["approved_at"]), delivery_id=f["delivery_id"],
        fulfilment_started_at=_parse_when(f["fulfilment_started_at"]), fulfilled_by=f["fulfilled_by"],
        manifest=bytes(b.get("manifest") or b""), manifest_signature=bytes(b.get("manifest_signature") or b""),
        manifest_key_id=f["manifest_key_id"],
    )


def _entry(t: Transition) -> str:
    return json.dumps({"at": _when(t.at), "action": t.action.value,
                       "from": t.from_state.value if t.from_state else "", "to": t.to_state.value,
                       "actor": t.actor, "role": t.role, "reason": t.reason}, ensure_ascii=False)


def _from_entry(raw: bytes | str) -> Transition:
    e = json.loads(raw)
    at = _parse_when(e["at"])
    assert at is not None
    return Transition(at, Action(e["action"]), State(e["from"]) if e["from"] else None, State(e["to"]),
                      e["actor"], e["role"], e["reason"])


def _pairs(fields: dict[str, str | bytes]) -> list[str | bytes]:
    return [x for kv in fields.items() for x in kv]


class RedisLegalStore:
    """The LegalStore port (gateway/domain/legal.py) on Redis."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.r = client
        self._create = client.register_script(CREATE)
        self._transition = client.register_script(TRANSITION)
        self._list = client.register_script(LIST)
        self._dispose = client.register_script(DISPOSE)

    @guarded
    async def create(self, request: LegalRequest, first: Transition) -> bool:
        keys = [request_key(request.request_id), history_key(request.request_id), ALL_KEY,
                state_key(request.state), case_key(request.case_number), agency_key(request.agency_name)]
        score = int(request.registered_at.timestamp() * 1000)
        args = [request.request_id, score, _entry(first), *_pairs(_fields(request))]
        return bool(await self._create(keys=keys, args=args))

    @guarded
    async def transition(self, after: LegalRequest, t: Transition) -> bool:
        if t.from_state is None or after.state != t.to_state:
            raise ValueError("a transition goes from a state to the state of `after`")
        rid = after.request_id
        keys = [request_key(rid), history_key(rid), state_key(t.from_state), state_key(t.to_state)]
        args = [rid, str(after.version - 1), t.from_state.value, _entry(t), *_pairs(_fields(after))]
        return int(await self._transition(keys=keys, args=args)) == 1

    @guarded
    async def get(self, request_id: str) -> LegalRequest | None:
        raw = await self.r.hgetall(request_key(request_id))  # type: ignore[misc]
        return _from_fields(raw) if raw else None

    @guarded
    async def history(self, request_id: str) -> list[Transition]:
        entries = await self.r.lrange(history_key(request_id), 0, -1)  # type: ignore[misc]
        return [_from_entry(e) for e in entries]

    @guarded
    async def list(self, *, state: State | None = None, case_number: str = "", agency_name: str = "",
                   offset: int = 0, limit: int = 50) -> list[LegalRequest]:
        filters = ([state_key(state)] if state else []) + \
                  ([case_key(case_number)] if case_number.strip() else []) + \
                  ([agency_key(agency_name)] if agency_name.strip() else [])
        scratch = f"{PREFIX}scratch:{secrets.token_hex(8)}"
        ids = await self._list(keys=[ALL_KEY, scratch, *filters], args=[offset, limit])
        if not ids:
            return []
        async with self.r.pipeline(transaction=False) as p:
            for rid in ids:
                p.hgetall(request_key(rid.decode() if isinstance(rid, bytes) else rid))
            found = await p.execute()
        return [_from_fields(raw) for raw in found if raw]

    # --- disposal (R8) ----------------------------------------------------------------------------

    @guarded
    async def closed_due(self, before: datetime, closed: frozenset[State], *, scan: int = 500,
                         max_requests: int = 10_000_000) -> builtins.list[tuple[str, datetime, str]]:
        """(request id, when it closed, its letter's SHA-256) of every request in a `closed` state that
        closed before `before`, oldest first. When it closed: its last history entry (nothing leaves
        a closed state). Bounded: at most `max_requests` ids are looked at."""
        found: builtins.list[tuple[str, datetime, str]] = []
        seen = 0
        for state in sorted(closed):
            ids: builtins.list[str] = []
            async for rid in self.r.sscan_iter(state_key(state), count=scan):
                ids.append(rid.decode() if isinstance(rid, bytes) else rid)
                seen += 1
                if seen >= max_requests:
                    break
            for i in range(0, len(ids), scan):
                chunk = ids[i:i + scan]
                async with self.r.pipeline(transaction=False) as p:
                    for rid in chunk:
                        p.lindex(history_key(rid), -1)
                        p.hmget(request_key(rid), "state", "letter_sha256")
                    answers = await p.execute()
                for rid, last, (st, letter) in zip(chunk, answers[::2], answers[1::2], strict=True):
                    if last is None or st is None or _text(st) != state.value:
                        continue  # gone, or moved, since the scan
                    at = _from_entry(last).at
                    if at < before:
                        found.append((rid, at, _text(letter)))
            if seen >= max_requests:
                break
        found.sort(key=lambda x: (x[1], x[0]))
        return found

    @guarded
    async def dispose(self, request_id: str, closed: frozenset[State]) -> int:
        """Destroy a closed request: its hash (with the signed manifest), history and index entries,
        in one script. 1 destroyed, 0 already gone, -1 refused (not closed: nothing changed)."""
        raw = await self.r.hmget(request_key(request_id), "state", "case_number", "agency_name")  # type: ignore[misc]
        if raw[0] is None:
            return 0
        state, case, agency = (_text(x) for x in raw)
        keys = [request_key(request_id), history_key(request_id), ALL_KEY, f"{PREFIX}state:{state}",
                case_key(case), agency_key(agency)]
        return int(await self._dispose(keys=keys, args=[request_id, state, *sorted(s.value for s in closed)]))

    @guarded
    async def letters_in_use(self, refs: Collection[str], *, excluding: Collection[str] = (),
                             scan: int = 500) -> set[str]:
        """Which of `refs` (letters' SHA-256) a request still kept references, leaving out the
        requests in `excluding` (those being disposed of). A scan of every request: legal requests
        are a few an hour."""
        refs, excluding = set(refs), set(excluding)
        if not refs:
            return set()
        used: set[str] = set()
        batch: builtins.list[str] = []

        async def check(ids: builtins.list[str]) -> None:
            async with self.r.pipeline(transaction=False) as p:
                for rid in ids:
                    p.hget(request_key(rid), "letter_sha256")
                for letter in await p.execute():
                    if letter is not None and _text(letter) in refs:
                        used.add(_text(letter))

        async for member in self.r.zscan_iter(ALL_KEY, count=scan):
            rid = _text(member[0])
            if rid in excluding:
                continue
            batch.append(rid)
            if len(batch) >= scan:
                await check(batch)
                batch = []
        if batch:
            await check(batch)
        return used


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
