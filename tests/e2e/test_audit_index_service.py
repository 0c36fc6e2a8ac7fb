"""The audit indexes behind the gateway: QueryEvents by number, staff id, terminal and hall, and the
subscriber's ListAccessHistory, answer from the indexes exactly what a scan of the chain answers,
and a chain written before the indexes is answered by scanning until `reindex` has run."""

from __future__ import annotations

from adapters.audit import indexes
from adapters.audit.keys import index_prefix, index_state_key
from tests.support.audit_calls import CASES, access_history, auditor, counter, ids, varied_trail
from tests.support.subscribers import OTHER


async def test_queries_and_access_history_answer_the_same_from_the_indexes_as_from_a_scan(gw):
    aud = await varied_trail(gw)
    await (await counter(gw, "C1002")).serve_by_id(OTHER)
    token = await gw.sign_in(OTHER)  # ORDINARY signed in moments ago (varied_trail): a code now is throttled
    chain = gw.settings.audit_chain
    assert await gw.redis.hget(index_state_key(chain), "complete") == b"1"  # a new chain is indexed
    # each query is itself audited: compare the indexed answer with a scan of the same chain state
    for criteria in CASES:
        indexed = await aud.query(**criteria)
        assert await gw.redis.delete(index_state_key(chain)) == 1  # now every query scans
        scanned = await aud.query(**criteria)
        await gw.redis.hset(index_state_key(chain), "complete", "1")
        assert ids(scanned)[:len(indexed)] == ids(indexed), criteria
        # the scan also sees the first query's own events where they match; nothing else differs
        assert all(e.fields["method"].endswith("QueryEvents") for e in scanned[len(indexed):]), criteria
        if criteria != {"staff_id": "C1001", "hall": "H002"}:
            assert indexed, criteria
    history = await access_history(gw, token)
    await gw.redis.delete(index_state_key(chain))
    again = await access_history(gw, token)
    assert again[1:] == history and again[0].what == "access history viewed at a self-service kiosk"
    assert len(history) >= 5  # two counter visits (2 each) and the sign-in


async def test_an_old_chain_is_scanned_until_reindexed(gw):
    aud = await auditor(gw)
    await (await counter(gw)).serve_by_id(OTHER)
    chain = gw.settings.audit_chain
    # as if written before the indexes: drop them and the state
    async for key in gw.redis.scan_iter(match=index_prefix(chain) + ":*"):
        await gw.redis.delete(key)
    before = await aud.query(staff_id="C1001")
    assert len(before) >= 3
    result = await indexes.reindex(gw.redis, chain)
    assert result.complete and result.events > 0
    after = await aud.query(staff_id="C1001")
    assert ids(after) == ids(before)
    token = await gw.sign_in(OTHER)
    assert [h.what for h in await access_history(gw, token)][-2:] == [
        "profile viewed at a service hall counter", "identified at a service hall counter"]
