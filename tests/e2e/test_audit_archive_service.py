"""The audit archive behind the gateway: with `audit_archive_url` set, QueryEvents and the subscriber's
ListAccessHistory answer after a move to PostgreSQL exactly what they answered from Redis before it,
and the chain verifies across both tiers (VerifyChain from the first seq names an edit in the archive)."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from adapters.audit import archiving
from adapters.audit.archive import PgAuditArchive
from hallgate_pb.v1 import audit_pb2
from tests.support.audit_calls import CASES, access_history, counter, ids, varied_trail
from tests.support.subscribers import OTHER


async def test_queries_and_history_answer_the_same_across_the_archive_boundary(make_gateway, archive_url):
    gw = await make_gateway(audit_archive_url=archive_url)
    assert gw.deps.audit_reader.archive is not None  # wired by build_deps from the setting
    aud = await varied_trail(gw)
    await (await counter(gw, "C1002")).serve_by_id(OTHER)
    token = await gw.sign_in(OTHER)
    before = {i: await aud.query(**criteria) for i, criteria in enumerate(CASES)}
    history = await access_history(gw, token)
    keys, kid = gw.settings.audit_keys()
    archive = PgAuditArchive(archive_url)
    try:
        moved = await archiving.move(gw.redis, archive, gw.settings.audit_chain, keys, kid,
                                     older_than=datetime.now(UTC), sink=gw.deps.audit)
        assert moved.archived > 20 and moved.trimmed == moved.archived
        for i, criteria in enumerate(CASES):
            after = await aud.query(**criteria)
            assert ids(after)[:len(before[i])] == ids(before[i]), criteria
            assert [e.fields for e in after[:len(before[i])]] == [e.fields for e in before[i]], criteria
            # later: the queries' and the history call's own events (the move's names no staff or subscriber)
            assert all(e.fields["method"].endswith(("QueryEvents", "ListAccessHistory"))
                       for e in after[len(before[i]):]), criteria
        again = await access_history(gw, token)
        assert again[1:] == history and len(history) >= 5
        result = await archiving.verify_across(gw.redis, archive, gw.settings.audit_chain, keys)
        assert result.ok and result.anchor == "genesis"
        # VerifyChain over gRPC: from the first seq it reads the archive, then Redis; an event edited
        # in the archive is named at its seq, as one edited in Redis is.
        whole = await aud.stub.VerifyChain(audit_pb2.VerifyChainRequest(start_seq=1), metadata=aud.md)
        assert whole.ok and whole.checked >= moved.archived and whole.verified_from == "range"
        async with await psycopg.AsyncConnection.connect(archive_url, autocommit=True) as conn:
            await conn.execute("UPDATE audit_events SET fields = jsonb_set(fields, '{reason}', '\"covered\"') "
                               "WHERE seq = 3")
        broken = await aud.stub.VerifyChain(audit_pb2.VerifyChainRequest(start_seq=1), metadata=aud.md)
        assert (broken.ok, broken.first_bad_seq, broken.reason) == (False, 3, "edited")
    finally:
        await archive.close()
