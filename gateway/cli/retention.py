"""`hallgate retention status|run`: hall rule R8 on the host (docs/retention.md).

`status` shows, for every rule of gateway/domain/retention.py, the retention, the cutoff, how many
records are due and the oldest of them (or why nothing runs for it: expires by TTL, the audit
trail's own commands, a store not wired yet). `run` disposes of what is due, each batch recorded as
an audit event before it is destroyed, and completes any disposal a run before it left unfinished;
`--dry-run` shows what it would do and changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from gateway.runtime.settings import Settings, from_env


def add_commands(sub: Any) -> None:
    env = from_env()
    re_ = sub.add_parser("retention", help="host: what the gateway keeps, for how long, and its disposal (R8)")
    rs = re_.add_subparsers(title="retention commands")
    st = rs.add_parser("status", help="per rule: retention, cutoff, how many records are due, the oldest")
    st.add_argument("--json", action="store_true", help="one JSON document")
    st.set_defaults(run=cmd_status)
    ru = rs.add_parser("run", help="dispose of what is due, each batch recorded as an audit event first "
                                   "(idempotent; completes an interrupted run)")
    ru.add_argument("--dry-run", action="store_true", help="print what is due; record and destroy nothing")
    ru.add_argument("--max-batches", type=int, default=1000, help="batches per rule and run [1000]")
    ru.set_defaults(run=cmd_run)
    for p in (st, ru):
        p.add_argument("--redis-url", default=env.redis_url,
                       help="[HALLGATE_REDIS_URL; default: the embedded Redis under --data-dir]")
        p.add_argument("--data-dir", default=env.data_dir, help="[HALLGATE_DATA_DIR, default .hallgate]")


def _runner(s: Settings, client: Any, max_batches: int = 1000) -> tuple[Any, Any]:
    """The runner as the gateway would write: its audit sink and reader, its stores. Returns
    (runner, what to close)."""
    from adapters.audit_reader import ChainAuditReader
    from adapters.legal_store import RedisLegalStore
    from adapters.retention_runner import (
        Disposer,
        LegalDisposer,
        RetentionRunner,
        SmsDeadLetterDisposer,
        register_disposers,
    )
    from gateway.domain.legal import LegalConfig
    from gateway.runtime.bootstrap import audit_archive, audit_sink, document_store

    keys, kid = s.audit_keys()
    archive = audit_archive(s)
    documents: Any = document_store(s)
    disposers: list[Disposer] = [LegalDisposer(RedisLegalStore(client), documents, LegalConfig.from_settings(s)),
                                 SmsDeadLetterDisposer(client),
                                 *register_disposers(client, _server_secret(s))]
    runner = RetentionRunner(s, client, disposers, sink=audit_sink(s, client),
                             reader=ChainAuditReader(client, s.audit_chain, keys, archive=archive, kid=kid),
                             chain=s.audit_chain, keys=keys,
                             actor={"staff_id": os.environ.get("USER", "operator"), "role": "admin"},
                             max_batches=max_batches)
    return runner, (archive, documents)


def _server_secret(s: Settings) -> bytes | None:
    """The server secret the pseudonym directory is sealed under, if this host has it; a host command
    never makes one (a new key would seal nothing and open nothing)."""
    if s.secret_key or (Path(s.data_dir) / "secret.key").exists():
        return s.key_bytes()
    return None


def _host(args: argparse.Namespace, work: Any) -> Any:
    from adapters.redis_client import connect as redis_connect

    s = from_env().with_(data_dir=args.data_dir)
    url = args.redis_url or f"unix://{(Path(args.data_dir) / 'redis' / 'redis.sock').resolve()}"

    async def go() -> Any:
        client = redis_connect(url, 10.0)
        runner, closing = _runner(s, client, getattr(args, "max_batches", 1000))
        try:
            return await work(runner)
        finally:
            for c in closing:
                close = getattr(c, "close", None)
                if close is not None:
                    await close()
            await client.aclose()

    return asyncio.run(go())


def _days(d: float) -> str:
    return f"{d:g} days"


def cmd_status(args: argparse.Namespace) -> int:
    rows = _host(args, lambda runner: runner.status())
    if args.json:
        print(json.dumps({"rules": [r.as_dict() for r in rows]}, ensure_ascii=False, indent=2))
        return 0
    for r in rows:
        if r.due is None:
            what = r.note
        elif r.due < 0:
            what = f"due: unknown (the store cannot count); cutoff {r.cutoff}"
        else:
            what = f"cutoff {r.cutoff}; due {r.due}" + (f", oldest {r.oldest_due}" if r.oldest_due else "")
        pending = f"; {r.pending} interrupted disposal(s): `hallgate retention run` completes them" if r.pending else ""
        print(f"{r.rule:22} {_days(r.retention_days):>11} ({r.setting})  {what}{pending}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from adapters.retention_runner import RetentionConflict

    if args.max_batches < 1:
        print("--max-batches must be at least 1", file=sys.stderr)
        return 2
    try:
        result = _host(args, lambda runner: runner.run(dry_run=args.dry_run))
    except RetentionConflict as e:
        print(f"REFUSED: {e}", file=sys.stderr)
        return 1
    if result.dry_run:
        for did in result.pending:
            print(f"would complete the interrupted disposal {did}")
        for r in result.would:
            print(f"would dispose of {r.due if r.due >= 0 else 'an unknown number of'} record(s) by {r.rule} "
                  f"(closed before {r.cutoff})" + (f", the oldest {r.oldest_due}" if r.oldest_due else ""))
        print("dry run: nothing recorded or destroyed")
        return 0
    for d in result.disposals:
        what = ", ".join(f"{v} {k}" for k, v in d.destroyed.items())
        print(f"{d.rule}: {d.records} record(s) disposed of ({what}); recorded as event seq {d.event_seq}"
              + (" (by the interrupted run before)" if d.resumed else "") + f" [{d.disposal_id}]")
    print(f"{len(result.disposals)} disposal(s)" + (
        f"; more due for {', '.join(result.more)}: run again" if result.more else ""))
    return 0
