"""Trimming old events for retention without losing the ability to verify what remains."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis
import structlog

from adapters.audit.indexes import UNINDEX_FN, UNINDEX_LUA
from adapters.audit.keys import OUTAGE, ChainKeys, entries, head_and_checkpoint, index_keys_of, seq_of, text
from adapters.audit.queries import _scan, verify_between
from adapters.audit.sink import ChainedAuditSink, Receipt
from gateway.domain import audit_chain as ac
from gateway.domain.errors import DependencyUnavailable

log = structlog.get_logger("hallgate.audit")

# KEYS: stream, checkpoint, then index keys named by trimmed events (at most TRIM_INDEX_KEYS)
# ARGV: expected checkpoint seq ("" for none), last trimmed id, its mac, MINID, new checkpoint's seq,
#       then the checkpoint's field, value, ...
# → {1, trimmed} | {0, why}
# The trimmed events leave the index keys given in the same step as the XTRIM.
TRIM_LUA = UNINDEX_FN + """
local cur = redis.call('HMGET', KEYS[2], 'seq', 'mac')
local cur_seq = cur[1] or ''
if cur_seq ~= ARGV[1] then
  if cur_seq == ARGV[5] and cur[2] == ARGV[3] then return {1, 0} end
  return {0, 'the checkpoint changed meanwhile (another trim?)'}
end
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #e == 0 then return {0, 'the last event to trim is gone'} end
local f, mac = e[1][2], nil
for i = 1, #f, 2 do if f[i] == 'mac' then mac = f[i + 1] end end
if mac ~= ARGV[3] then return {0, 'the last event to trim changed'} end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 6, #ARGV))
local trimmed = redis.call('XTRIM', KEYS[1], 'MINID', ARGV[4])
for i = 3, #KEYS do unindex(KEYS[i], ARGV[2]) end
return {1, trimmed}
"""

# How many index keys ride in the trim script itself; a trim that names more (a month of calls names
# one `req` key per call) removes the rest right after, in scripts of this many keys each. If that is
# interrupted, the leftover members point at trimmed entries: queries skip them (their XRANGE is
# empty) and `reindex` or the next trim removes them.
TRIM_INDEX_KEYS = 1000


@dataclass(frozen=True, slots=True)
class TrimResult:
    trimmed: int
    checkpoint: ac.Checkpoint | None
    event: Receipt


async def trim(client: aioredis.Redis, chain: str, keys: Mapping[str, bytes], key_id: str, older_than: datetime, *,
               sink: ChainedAuditSink | None = None, actor: Mapping[str, str] | None = None,
               now: datetime | None = None, batch: int = 1000) -> TrimResult:
    """Trim events older than `older_than` (by stream time) without breaking verification.

    1. Verify the chain up to the last event to trim; a broken chain raises ChainBroken and
       nothing is trimmed (trimming would launder the evidence).
    2. Record the trim as an audit event (method maintenance/trim, decision allowed, the
       checkpoint in its fields; `actor` adds e.g. staff_id/role/hall). If that fails, nothing
       is trimmed (fail closed).
    3. One Lua script stores the signed checkpoint (seq, mac, stream id of the last trimmed event)
       and XTRIMs by MINID, so the checkpoint and the trim happen together or not at all; the same
       script removes the trimmed events from their index keys (beyond TRIM_INDEX_KEYS keys, the
       rest follow in further scripts).
    Redis failures raise DependencyUnavailable("audit")."""
    now = now or datetime.now(UTC)
    sink = sink or ChainedAuditSink(client, keys, key_id, chain)
    k = ChainKeys.of(chain)
    cutoff = ac.stream_id_at(older_than)
    try:
        last = entries(await client.xrevrange(k.stream, max="(" + cutoff, count=1))
        _, cp_fields = await head_and_checkpoint(client, k)
    except OUTAGE as e:
        raise DependencyUnavailable("audit") from e
    if last:
        result = await verify_between(client, chain, keys, "-", last[0][0], batch=batch)
        if not result.ok:
            log.error("audit_trim_refused", **result.as_dict())
            raise ac.ChainBroken(result)
    who = dict(actor or {})
    at = now.isoformat(timespec="milliseconds")
    event = ac.AuditEvent(at=at, channel="maintenance", method="maintenance/trim", decision="allowed",
                          reason="retention", code="OK", staff_id=who.pop("staff_id", ""), role=who.pop("role", ""),
                          extra={"older_than": older_than.isoformat(timespec="milliseconds"), **who})
    if not last:
        return TrimResult(0, None, await sink.record(event.fields()))
    last_id, last_fields = last[0]  # verified above: its seq and mac are the chain's own
    cp = ac.Checkpoint(int(last_fields["seq"]), last_fields["mac"], last_id, at, key_id)
    anchor_seq = seq_of(cp_fields.get("seq")) or 0
    receipt = await sink.record(dataclasses.replace(event, records=cp.seq - anchor_seq, extra={
        **event.extra, "checkpoint_seq": cp.seq, "checkpoint_id": cp.id, "checkpoint_mac": cp.mac}).fields())
    cp = ac.Checkpoint(cp.seq, cp.mac, cp.id, cp.at, key_id, receipt.seq).signed(chain, sink.keys[key_id])
    ms, seq = ac.parse_stream_id(last_id)
    args = [cp_fields.get("seq", ""), last_id, cp.mac, f"{ms}-{seq + 1}", str(cp.seq)]
    for f, v in cp.as_fields().items():
        args += (f, v)
    try:  # the index keys the trimmed events are in (one pass over them, keys only kept)
        named: dict[str, None] = {}
        async for _, fields in _scan(client, k.stream, "-", last_id, batch):
            named.update(dict.fromkeys(index_keys_of(chain, fields)))
    except OUTAGE as e:
        raise DependencyUnavailable("audit") from e
    ix = list(named)
    res = await sink.run_script(TRIM_LUA, [k.stream, k.checkpoint, *ix[:TRIM_INDEX_KEYS]], args)
    if int(res[0]) != 1:
        log.error("audit_trim_failed", why=text(res[1]))
        raise DependencyUnavailable("audit")
    for i in range(TRIM_INDEX_KEYS, len(ix), TRIM_INDEX_KEYS):
        await sink.run_script(UNINDEX_LUA, ix[i:i + TRIM_INDEX_KEYS], ["", last_id])
    log.info("audit_trimmed", chain=chain, trimmed=int(res[1]), checkpoint_seq=cp.seq)
    return TrimResult(int(res[1]), cp, receipt)
