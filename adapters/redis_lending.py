"""The archive lending register (gateway/domain/lending.py) on Redis.

Every key has the hash tag `{lending}`, so the scripts stay in one Redis Cluster slot, and every
key a script touches is passed in KEYS.

    hg:{lending}:doc:<archive id>                  hash   the document, and `loan`: its open loan's id
    hg:{lending}:loan:<id>                         hash   the loan (see _fields)
    hg:{lending}:loan:<id>:history                 list   JSON transitions, oldest first
    hg:{lending}:hall:<hall>:loans                 zset   the hall's loans, scored by request time (ms)
    hg:{lending}:hall:<hall>:state:<state>         zset   by current state, scored by request time
    hg:{lending}:hall:<hall>:holder:<staff id>     zset   by borrower, scored by request time
    hg:{lending}:hall:<hall>:due                   zset   loans OUT, scored by due time (ms)
    hg:{lending}:due                               zset   every hall's loans OUT, by due time: the sweep's
    hg:{lending}:closed                            zset   loans in a final state, by when they closed (disposal)
    hg:{lending}:alerted:<loan id>:<day>           string the overdue alert of that day was claimed (SET NX, 2 days)

"What is overdue" is a range of a due zset up to now: O(log n + answer). "What does Y hold" is
Y's holder zset filtered by state OUT. Disposal (R8) is a range of `closed`.
"""

from __future__ import annotations

import builtins
import json
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from adapters.redis_state import guarded
from gateway.domain.lending import FINAL_STATES, Action, Document, Kind, Loan, State, Transition

PREFIX = "hg:{lending}:"
DUE_KEY = f"{PREFIX}due"
CLOSED_KEY = f"{PREFIX}closed"
ALERT_TTL = 2 * 86400

# KEYS: doc. ARGV: field/value pairs. 1 stored, 0 the archive id is taken.
ADD_DOCUMENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# KEYS: doc, loan, history, hall loans, state zset, holder zset.
# ARGV: id, score ms, history entry, field/value pairs…
# 1 stored, 0 the loan id is taken, -1 the document has an open loan, -2 no such document.
CREATE_LOAN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local held = redis.call('HGET', KEYS[1], 'loan')
if held and held ~= '' then return -1 end
redis.call('HSET', KEYS[1], 'loan', ARGV[1])
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[1])
return 1
"""

# KEYS: loan, history, from-state zset, to-state zset, doc, due (all halls), due (hall), closed.
# ARGV: id, expected version, expected state, history entry, due score ('' : not OUT), closed
# score ('' : open), request score, field/value pairs…
# 1 done, 0 no such loan, -1 it moved on (nothing changed).
TRANSITION = """
local cur = redis.call('HMGET', KEYS[1], 'version', 'state')
if not cur[1] then return 0 end
if cur[1] ~= ARGV[2] or cur[2] ~= ARGV[3] then return -1 end
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[7], ARGV[1])
if ARGV[5] == '' then
  redis.call('ZREM', KEYS[6], ARGV[1])
  redis.call('ZREM', KEYS[7], ARGV[1])
else
  redis.call('ZADD', KEYS[6], ARGV[5], ARGV[1])
  redis.call('ZADD', KEYS[7], ARGV[5], ARGV[1])
end
if ARGV[6] ~= '' then
  redis.call('ZADD', KEYS[8], ARGV[6], ARGV[1])
  if redis.call('HGET', KEYS[5], 'loan') == ARGV[1] then redis.call('HSET', KEYS[5], 'loan', '') end
end
return 1
"""

# KEYS: loan, history, state zset, hall loans, holder zset, closed. ARGV: id, expected state.
# 1 destroyed, 0 already gone, -1 not in the expected final state (nothing changed).
DISPOSE = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st then
  redis.call('ZREM', KEYS[6], ARGV[1])
  return 0
end
if st ~= ARGV[2] then return -1 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
return 1
"""


def doc_key(archive_id: str) -> str:
    return f"{PREFIX}doc:{archive_id}"


def loan_key(loan_id: str) -> str:
    return f"{PREFIX}loan:{loan_id}"


def history_key(loan_id: str) -> str:
    return f"{PREFIX}loan:{loan_id}:history"


def hall_loans_key(hall: str) -> str:
    return f"{PREFIX}hall:{hall}:loans"


def state_key(hall: str, state: State | str) -> str:
    return f"{PREFIX}hall:{hall}:state:{State(state).value}"


def holder_key(hall: str, staff_id: str) -> str:
    return f"{PREFIX}hall:{hall}:holder:{staff_id}"


def hall_due_key(hall: str) -> str:
    return f"{PREFIX}hall:{hall}:due"


def alert_key(loan_id: str, day: str) -> str:
    return f"{PREFIX}alerted:{loan_id}:{day}"


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _when(t: datetime | None) -> str:
    return "" if t is None else t.isoformat()


def _parse(s: str) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _decoded(raw: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def _doc_fields(d: Document) -> dict[str, str]:
    return {"archive_id": d.archive_id, "kind": d.kind.value, "hall": d.hall, "description": d.description,
            "registered_by": d.registered_by, "registered_at": _when(d.registered_at), "loan": ""}


def _doc(f: dict[str, str]) -> Document:
    at = _parse(f["registered_at"])
    assert at is not None
    return Document(f["archive_id"], Kind(f["kind"]), f["hall"], f["description"], f["registered_by"], at)


def _fields(loan: Loan) -> dict[str, str]:
    return {"loan_id": loan.loan_id, "archive_id": loan.archive_id, "hall": loan.hall, "state": loan.state.value,
            "version": str(loan.version), "borrower": loan.borrower, "reason": loan.reason,
            "requested_at": _when(loan.requested_at), "due_at": _when(loan.due_at), "decided_by": loan.decided_by,
            "decided_at": _when(loan.decided_at), "handed_out_by": loan.handed_out_by,
            "handed_out_at": _when(loan.handed_out_at), "returned_to": loan.returned_to,
            "returned_at": _when(loan.returned_at)}


def _loan(f: dict[str, str]) -> Loan:
    requested, due = _parse(f["requested_at"]), _parse(f["due_at"])
    assert requested is not None and due is not None
    return Loan(loan_id=f["loan_id"], archive_id=f["archive_id"], hall=f["hall"], state=State(f["state"]),
                version=int(f["version"]), borrower=f["borrower"], reason=f["reason"], requested_at=requested,
                due_at=due, decided_by=f.get("decided_by", ""), decided_at=_parse(f.get("decided_at", "")),
                handed_out_by=f.get("handed_out_by", ""), handed_out_at=_parse(f.get("handed_out_at", "")),
                returned_to=f.get("returned_to", ""), returned_at=_parse(f.get("returned_at", "")))


def _entry(t: Transition) -> str:
    return json.dumps({"at": _when(t.at), "action": t.action.value,
                       "from": t.from_state.value if t.from_state else "", "to": t.to_state.value,
                       "actor": t.actor, "role": t.role, "reason": t.reason}, ensure_ascii=False)


def _from_entry(raw: bytes | str) -> Transition:
    e = json.loads(raw)
    at = _parse(e["at"])
    assert at is not None
    return Transition(at, Action(e["action"]), State(e["from"]) if e["from"] else None, State(e["to"]),
                      e["actor"], e["role"], e["reason"])


def _pairs(fields: dict[str, str]) -> list[str]:
    return [x for kv in fields.items() for x in kv]


class RedisLendingStore:
    """The LendingStore port on Redis, plus the overdue sweep's claims and the disposal hook."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.r = client
        self._add_document = client.register_script(ADD_DOCUMENT)
        self._create = client.register_script(CREATE_LOAN)
        self._transition = client.register_script(TRANSITION)
        self._dispose = client.register_script(DISPOSE)

    # --- documents

    @guarded
    async def add_document(self, doc: Document) -> bool:
        return bool(await self._add_document(keys=[doc_key(doc.archive_id)], args=_pairs(_doc_fields(doc))))

    @guarded
    async def document(self, archive_id: str) -> tuple[Document, str] | None:
        raw = await self.r.hgetall(doc_key(archive_id))  # type: ignore[misc]
        if not raw:
            return None
        f = _decoded(raw)
        return _doc(f), f.get("loan", "")

    # --- loans

    @guarded
    async def create_loan(self, loan: Loan, first: Transition) -> str:
        keys = [doc_key(loan.archive_id), loan_key(loan.loan_id), history_key(loan.loan_id),
                hall_loans_key(loan.hall), state_key(loan.hall, loan.state), holder_key(loan.hall, loan.borrower)]
        args: list[str | int] = [loan.loan_id, _ms(loan.requested_at), _entry(first), *_pairs(_fields(loan))]
        done = int(await self._create(keys=keys, args=args))
        return {1: "ok", 0: "taken", -1: "unavailable", -2: "no_document"}[done]

    @guarded
    async def transition(self, after: Loan, t: Transition) -> bool:
        if t.from_state is None or after.state != t.to_state:
            raise ValueError("a transition goes from a state to the state of `after`")
        lid, hall = after.loan_id, after.hall
        keys = [loan_key(lid), history_key(lid), state_key(hall, t.from_state), state_key(hall, t.to_state),
                doc_key(after.archive_id), DUE_KEY, hall_due_key(hall), CLOSED_KEY]
        closed = after.closed_at
        args = [lid, str(after.version - 1), t.from_state.value, _entry(t),
                str(_ms(after.due_at)) if after.state == State.OUT else "",
                str(_ms(closed)) if closed is not None else "", str(_ms(after.requested_at)),
                *_pairs(_fields(after))]
        return int(await self._transition(keys=keys, args=args)) == 1

    @guarded
    async def loan(self, loan_id: str) -> Loan | None:
        raw = await self.r.hgetall(loan_key(loan_id))  # type: ignore[misc]
        return _loan(_decoded(raw)) if raw else None

    @guarded
    async def history(self, loan_id: str) -> list[Transition]:
        entries = await self.r.lrange(history_key(loan_id), 0, -1)  # type: ignore[misc]
        return [_from_entry(e) for e in entries]

    async def _loans(self, ids: builtins.list[Any]) -> builtins.list[Loan]:
        if not ids:
            return []
        async with self.r.pipeline(transaction=False) as p:
            for lid in ids:
                p.hgetall(loan_key(_text(lid)))
            found = await p.execute()
        return [_loan(_decoded(raw)) for raw in found if raw]

    @guarded
    async def list_loans(self, hall: str, *, holder: str = "", state: State | None = None,
                         overdue_at: datetime | None = None, offset: int = 0, limit: int = 50) -> builtins.list[Loan]:
        if overdue_at is not None:
            # Most overdue first: the hall's due zset up to now, O(log n + answer).
            ids = await self.r.zrangebyscore(hall_due_key(hall), "-inf", _ms(overdue_at),
                                             start=offset, num=limit)
            loans = [x for x in await self._loans(ids) if x.state == State.OUT]
            return [x for x in loans if not holder or x.borrower == holder]
        if holder:
            # A borrower's loans are few: filter their zset by state.
            ids = await self.r.zrevrange(holder_key(hall, holder), 0, -1)
            loans = [x for x in await self._loans(ids) if state is None or x.state == state]
            return loans[offset:offset + limit]
        key = state_key(hall, state) if state is not None else hall_loans_key(hall)
        ids = await self.r.zrevrange(key, offset, offset + limit - 1)
        return await self._loans(ids)

    # --- overdue alerts

    @guarded
    async def overdue(self, now: datetime, limit: int = 1000) -> builtins.list[Loan]:
        """Every hall's loans OUT and due by `now`, most overdue first (at most `limit`)."""
        ids = await self.r.zrangebyscore(DUE_KEY, "-inf", _ms(now), start=0, num=limit)
        return [x for x in await self._loans(ids) if x.state == State.OUT]

    @guarded
    async def count_overdue(self, now: datetime) -> int:
        return int(await self.r.zcount(DUE_KEY, "-inf", _ms(now)))

    @guarded
    async def claim_alert(self, loan_id: str, day: str) -> bool:
        """True for the first claim of (loan, day) across every process: SET NX."""
        return bool(await self.r.set(alert_key(loan_id, day), "1", nx=True, ex=ALERT_TTL))

    @guarded
    async def release_alert(self, loan_id: str, day: str) -> None:
        """Give a claim back (its alert could not be recorded): the next sweep tries again."""
        await self.r.delete(alert_key(loan_id, day))

    # --- disposal (R8) -----------------------------------------------------------------------------

    @guarded
    async def count_returned(self, before: datetime) -> tuple[int, datetime | None]:
        """How many loans closed (returned, rejected, cancelled) before `before`, and the oldest's closing."""
        n = int(await self.r.zcount(CLOSED_KEY, "-inf", f"({_ms(before)}"))
        first = await self.r.zrange(CLOSED_KEY, 0, 0, withscores=True) if n else []
        oldest = datetime.fromtimestamp(float(first[0][1]) / 1000, UTC) if first else None
        return n, oldest

    @guarded
    async def dispose_returned(self, before: datetime, batch: int = 500) -> builtins.list[str]:
        """Destroy every loan that closed (returned, rejected, cancelled: never an open one) before
        `before`: its record, history and index entries, one script per loan. Returns their ids.
        Idempotent; bounded by the closed index."""
        gone: builtins.list[str] = []
        for _ in range(1_000_000 // batch):
            ids = [_text(x) for x in await self.r.zrangebyscore(CLOSED_KEY, "-inf", f"({_ms(before)}",
                                                                start=0, num=batch)]
            if not ids:
                break
            for lid in ids:
                raw = await self.r.hmget(loan_key(lid), "state", "hall", "borrower")  # type: ignore[misc]
                if raw[0] is None:
                    await self.r.zrem(CLOSED_KEY, lid)
                    continue
                state, hall, borrower = (_text(x) for x in raw)
                if State(state) not in FINAL_STATES:  # cannot happen: nothing leaves a final state
                    await self.r.zrem(CLOSED_KEY, lid)
                    continue
                keys = [loan_key(lid), history_key(lid), state_key(hall, state), hall_loans_key(hall),
                        holder_key(hall, borrower), CLOSED_KEY]
                if int(await self._dispose(keys=keys, args=[lid, state])) == 1:
                    gone.append(lid)
        return gone
