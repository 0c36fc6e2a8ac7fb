"""`hallgate audit …`: auditors' queries over the audit channel, and maintenance on the host."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf import timestamp_pb2

from gateway.cli import connect
from gateway.runtime.settings import from_env
from hallgate_pb.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    clerk_pb2,
    incident_pb2,
    kiosk_pb2,
    legal_pb2,
    lending_pb2,
    staff_pb2,
)

FILTERS = ("msisdn", "staff_id", "terminal", "hall", "method", "decision", "channel")
SERVICE_MODULES = (kiosk_pb2, clerk_pb2, staff_pb2, legal_pb2, lending_pb2, audit_pb2, incident_pb2)


def methods() -> dict[str, list[str]]:
    """{service: [method, ...]} of the public API (hallgate.v1), in the order of the proto files."""
    return {s.name: [m.name for m in s.methods]
            for module in SERVICE_MODULES for s in module.DESCRIPTOR.services_by_name.values()}


def full_method(name: str) -> str:
    """A method as the audit trail records it: `ListCallDetails`, `KioskService/ListCallDetails`,
    `hallgate.v1.KioskService/ListCallDetails` or `/hallgate.v1.KioskService/ListCallDetails` are
    all `/hallgate.v1.KioskService/ListCallDetails`; a name outside the API with a slash (the
    maintenance events' `maintenance/lending`) stands as given."""
    name = name.strip()
    if not name:
        return ""
    known = {f"/hallgate.v1.{service}/{m}": (service, m) for service, ms in methods().items() for m in ms}
    bare = name.lstrip("/").removeprefix("hallgate.v1.")
    found = [full for full, (service, m) in known.items() if bare in (m, f"{service}/{m}")]
    if len(found) == 1:
        return found[0]
    if "/" in name:
        return name
    raise argparse.ArgumentTypeError("no such method in the API: see `--help` for the list (the short form, "
                                     "ListCallDetails, or the full one, /hallgate.v1.KioskService/ListCallDetails)")


def method_help() -> str:
    listed = "; ".join(f"{service}: {', '.join(ms)}" for service, ms in methods().items())
    return (f"a method, short (ListCallDetails) or full (/hallgate.v1.KioskService/ListCallDetails); the API's "
            f"methods are {listed}")


def add_commands(sub: Any) -> None:
    au = connect.add_staff_terminal(
        sub, "audit", "the audit trail: query, verify, export (auditors); trim, ship (host)", "audit-B01-A01",
        "an auditor")
    for name, helptext, run in (("query", "print matching events, oldest first", cmd_query),
                                ("tail", "follow new matching events", cmd_tail),
                                ("export", "write matching events as JSON Lines", cmd_export)):
        p = au.add_parser(name, help=helptext)
        for f in FILTERS:
            if f == "method":
                p.add_argument("--method", type=full_method, default="", metavar="METHOD", help=method_help())
            else:
                p.add_argument("--" + f.replace("_", "-"), dest=f, default="")
        p.add_argument("--since", help="ISO time, e.g. 2026-11-01T00:00:00+08:00")
        p.add_argument("--until", help="ISO time")
        p.add_argument("--limit", type=int, default=0)
        p.add_argument("--out", help="file to write (export); default standard output")
        p.add_argument("--interval", type=float, default=1.0, help="seconds between polls (tail)")
        if name != "export":
            p.add_argument("--json", action="store_true", help="one JSON object per event (its stored fields)")
        p.set_defaults(run=run)
    ve = au.add_parser("verify", help="verify the chain; exit 1 and name the first broken event if not intact")
    ve.add_argument("--start-seq", type=int, default=0, help="verify exactly this range (no verified position "
                                                              "is read or recorded)")
    ve.add_argument("--end-seq", type=int, default=0)
    ve.add_argument("--full", action="store_true",
                    help="host: verify the whole chain from its start, straight from Redis, printing progress, "
                         "and record the verified position (default: incremental, over the audit channel)")
    ve.add_argument("--progress-every", type=int, default=10_000, help="--full: a progress line every N events")
    ve.add_argument("--json", action="store_true", help="the result as one JSON document (not with --full)")
    ve.set_defaults(run=cmd_verify)
    vx = au.add_parser("verify-export", help="host: check a file ExportEvents wrote (the audit desk's download): "
                                             "every event's seal under the audit key, and the links between "
                                             "consecutive events; exit 1 naming the first bad line")
    vx.add_argument("file", help="the exported JSON Lines file")
    vx.add_argument("--json", action="store_true", help="the verdict as one JSON document")
    vx.set_defaults(run=cmd_verify_export)

    env = from_env()
    tr = au.add_parser("trim", help="host: remove events past retention after a signed checkpoint")
    tr.add_argument("--months", type=int, default=env.audit_retention_months,
                    help=f"retention in months [HALLGATE_AUDIT_RETENTION_MONTHS, default {env.audit_retention_months}]")
    sh = au.add_parser("ship", help="host: follow the chain and write JSON Lines for a SIEM, resuming after restarts")
    sh.add_argument("--group", default="siem", help="consumer group [siem]")
    sh.add_argument("--consumer", default=os.uname().nodename, help="consumer name [this host's name]")
    sh.add_argument("--out", help="JSON Lines file (appended; exactly once); default standard output")
    sh.add_argument("--once", action="store_true", help="ship what is there and stop")
    st = au.add_parser("status", help="host: the chain's head, checkpoint and length")
    st.add_argument("--json", action="store_true", help="one JSON document")
    ri = au.add_parser("reindex", help="host: build the query indexes of a chain written before they existed "
                                       "(idempotent, resumes where it stopped)")
    ri.add_argument("--batch", type=int, default=1000, help="stream entries per round trip [1000]")
    ar = au.add_parser("archive", help="host: move events older than the hot window to the PostgreSQL archive "
                                       "(HALLGATE_AUDIT_ARCHIVE_URL; idempotent, run again after any failure)")
    ar.add_argument("--hot-days", type=float, default=env.audit_hot_days,
                    help=f"days events stay in Redis [HALLGATE_AUDIT_HOT_DAYS, default {env.audit_hot_days}]")
    ar.add_argument("--batch", type=int, default=500, help="events per archive transaction [500]")
    ar.add_argument("--max-events", type=int, default=0, help="stop after moving this many (0: all)")
    di = au.add_parser("dispose", help="host: destroy whole archive months past retention, each after a signed "
                                       "anchor and recorded as an audit event (R8; idempotent)")
    di.add_argument("--retention-months", type=int, default=env.audit_retention_months,
                    help=f"months kept [HALLGATE_AUDIT_RETENTION_MONTHS, default {env.audit_retention_months}]")
    di.add_argument("--dry-run", action="store_true", help="verify and print what would be destroyed; change nothing")
    ve.add_argument("--redis-url", default=env.redis_url,
                    help="--full: [HALLGATE_REDIS_URL; default: the embedded Redis under --data-dir]")
    for p, run in ((tr, cmd_trim), (sh, cmd_ship), (st, cmd_status), (ri, cmd_reindex), (ar, cmd_archive),
                   (di, cmd_dispose)):
        p.add_argument("--redis-url", default=env.redis_url,
                       help="[HALLGATE_REDIS_URL; default: the embedded Redis under --data-dir]")
        p.set_defaults(run=run)


def _ts(text: str | None) -> timestamp_pb2.Timestamp | None:
    if not text:
        return None
    t = timestamp_pb2.Timestamp()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise RuntimeError("--since and --until take an ISO time, e.g. 2026-11-01T00:00:00+08:00") from None
    t.FromDatetime(when if when.tzinfo else when.replace(tzinfo=UTC))
    return t


def _filter(args: argparse.Namespace, since: str | None = None) -> audit_pb2.EventFilter:
    f = audit_pb2.EventFilter(**{name: getattr(args, name) for name in FILTERS})
    start, end = _ts(since or args.since), _ts(args.until)
    if start:
        f.start_time.CopyFrom(start)
    if end:
        f.end_time.CopyFrom(end)
    return f


def _line(event: audit_pb2.AuditEvent) -> str:
    """One event a line. A stream's two events say which they are: its opening, and its close with
    how it ended and how many records left (`close CANCELLED 1000 rec`)."""
    f = event.fields
    who = "/".join(x for x in (f.get("staff_id", ""), f.get("role", "")) if x) or "-"
    phase = f.get("phase", "")
    ended = f" {f.get('code', '')} {f.get('records', '0')} rec" if phase == "close" else ""
    return (f"{event.seq:>7} {f.get('at', ''):29} {f.get('channel', ''):7} {f.get('terminal', '') or '-':18} "
            f"{who:22} {f.get('method', '').rsplit('/', 1)[-1]:24} {f.get('subscriber', '') or '-':12} "
            f"{f.get('decision', ''):8} {f.get('reason', '')}" + (f"  [{phase}{ended}]" if phase else ""))


def cmd_query(args: argparse.Namespace) -> int:
    req = audit_pb2.QueryEventsRequest(filter=_filter(args), limit=args.limit)  # a bad time: before connecting
    with connect.channel(args) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        for reply in stub.QueryEvents(req, metadata=connect.staff_metadata(args), timeout=300):
            print(_json_line(reply.event) if args.json else _line(reply.event))
    return 0


def _json_line(event: audit_pb2.AuditEvent) -> str:
    return json.dumps({"seq": event.seq, "id": event.id, **dict(event.fields)}, ensure_ascii=False, sort_keys=True)


def cmd_tail(args: argparse.Namespace) -> int:
    since = datetime.now(UTC).isoformat()
    seen: set[str] = set()
    with connect.channel(args) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        while True:
            req = audit_pb2.QueryEventsRequest(filter=_filter(args, since))
            for reply in stub.QueryEvents(req, metadata=connect.staff_metadata(args), timeout=60):
                if reply.event.id not in seen:
                    seen.add(reply.event.id)
                    print(_json_line(reply.event) if args.json else _line(reply.event), flush=True)
                    since = reply.event.fields.get("at", since)
            time.sleep(args.interval)


def _private_output(path: str) -> Any:
    """The export file, owner-only (0600) from its creation and also when it existed before:
    exported events name staff, terminals and subscribers' pseudonyms."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


def cmd_export(args: argparse.Namespace) -> int:
    out = _private_output(args.out) if args.out else sys.stdout.buffer
    try:
        with connect.channel(args) as channel:
            stub = audit_pb2_grpc.AuditServiceStub(channel)
            for chunk in stub.ExportEvents(audit_pb2.ExportEventsRequest(filter=_filter(args)),
                                           metadata=connect.staff_metadata(args), timeout=600):
                out.write(chunk.jsonl)
    finally:
        if args.out:
            out.close()
    return 0


FROM = {"verified": "since the last verified position", "checkpoint": "from the retention checkpoint",
        "genesis": "from the chain's first event", "range": "in the range asked for",
        "predecessor": "in the range asked for"}


def cmd_verify_export(args: argparse.Namespace) -> int:
    """On the audit host (it needs the audit key): the verdict on an exported file."""
    from gateway.domain.audit_chain import check_export

    s = from_env()
    keys, _ = s.audit_keys()
    try:
        with open(args.file, encoding="utf-8", errors="replace") as f:
            verdict = check_export(s.audit_chain, keys, f)
    except OSError as err:
        print(f"error: {args.file}: {err.strerror or err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({k: getattr(verdict, k) for k in verdict.__dataclass_fields__}))
    elif verdict.ok:
        how = ("one unbroken run: verified as a chain" if verdict.whole
               else f"{verdict.linked} links between consecutive events checked; a filtered export has gaps")
        print(f"ok: {verdict.events} events (seq {verdict.first_seq} to {verdict.last_seq}), every seal holds; {how}")
    else:
        print(f"NOT OK at line {verdict.bad_line}: {verdict.why} ({verdict.events} lines before it were good)")
    return 0 if verdict.ok else 1


def cmd_verify(args: argparse.Namespace) -> int:
    if args.full:
        if args.start_seq or args.end_seq:
            print("--full verifies the whole chain: leave out --start-seq/--end-seq", file=sys.stderr)
            return 2
        if args.json:
            print("--full prints its progress as text: leave out --json", file=sys.stderr)
            return 2
        return _verify_full(args)
    with connect.channel(args) as channel:
        r = audit_pb2_grpc.AuditServiceStub(channel).VerifyChain(
            audit_pb2.VerifyChainRequest(start_seq=args.start_seq, end_seq=args.end_seq),
            metadata=connect.staff_metadata(args), timeout=600)
    if args.json:
        print(json.dumps({"ok": r.ok, "checked": r.checked, "verified_from": r.verified_from,
                          "first_bad_seq": r.first_bad_seq, "first_bad_id": r.first_bad_id, "reason": r.reason,
                          "verified_position_rejected": r.verified_position_rejected}, indent=2))
        return 0 if r.ok else 1
    if r.verified_position_rejected:
        print(f"WARNING: the stored verified position was not trusted ({r.verified_position_rejected}); "
              "verified from the start instead")
    where = FROM.get(r.verified_from, "")
    if r.ok:
        print(f"chain intact: {r.checked} events verified" + (f" {where}" if where else ""))
        return 0
    print(f"chain BROKEN at seq {r.first_bad_seq} (entry {r.first_bad_id}): {r.reason}; {r.checked} events checked")
    return 1


def _verify_full(args: argparse.Namespace) -> int:
    """The whole chain from its start (retention checkpoint or genesis), on the host, with a progress
    line every N events; records the verified position when the chain holds."""
    from adapters.audit.checkpoints import verify_incremental

    s = from_env()
    keys, kid = s.audit_keys()

    def progress(checked: int, seq: int, seconds: float) -> None:
        print(f"verified {checked:,} events (seq {seq}) in {seconds:.1f} s: {checked / max(seconds, 1e-9):,.0f} "
              "events/s", flush=True)

    started = time.perf_counter()
    run = _host(args, lambda client: verify_incremental(client, s.audit_chain, keys, kid, full=True,
                                                        progress=progress, every=max(1, args.progress_every)))
    seconds = time.perf_counter() - started
    r = run.result
    if run.rejected:
        print(f"WARNING: the stored verified position was not trusted: {run.rejected}")
    if r.ok:
        print(f"chain intact: {r.checked:,} events verified from {r.anchor} in {seconds:.1f} s "
              f"({r.checked / max(seconds, 1e-9):,.0f} events/s)"
              + (f"; verified position recorded at seq {run.recorded_seq}" if run.recorded_seq else ""))
        return 0
    print(f"chain BROKEN at seq {r.first_bad_seq} (entry {r.first_bad_id}): {r.reason} ({r.detail}); "
          f"{r.checked:,} events checked")
    return 1


def _host(args: argparse.Namespace, work: Any) -> Any:
    from adapters.redis_client import connect as redis_connect

    url = args.redis_url or f"unix://{(Path(args.data_dir) / 'redis' / 'redis.sock').resolve()}"

    async def go() -> Any:
        client = redis_connect(url, 5.0)
        try:
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def cmd_trim(args: argparse.Namespace) -> int:
    from adapters.audit.retention import trim
    from gateway.domain.audit_chain import retention_cutoff
    from gateway.runtime.bootstrap import audit_sink

    s = from_env()
    if s.audit_archive_url:
        # With an archive, Redis is trimmed only by the mover, after each event is in the archive; a
        # trim by age could drop events the mover has not moved yet (while the archive was down, say).
        print("refusing to trim: HALLGATE_AUDIT_ARCHIVE_URL is set, so `hallgate audit archive` trims Redis after "
              "archiving, and `hallgate audit dispose` applies retention in the archive (docs/audit.md)",
              file=sys.stderr)
        return 2
    keys, kid = s.audit_keys()

    async def work(client: Any) -> Any:
        sink = audit_sink(s, client)  # as the gateway writes (durability, replicas): the trim's own event
        return await trim(client, s.audit_chain, keys, kid, retention_cutoff(datetime.now(UTC), args.months),
                          sink=sink, actor={"staff_id": os.environ.get("USER", "operator"), "role": "admin"})

    result = _host(args, work)
    print(f"trimmed {result.trimmed} events older than {args.months} months; checkpoint recorded")
    return 0


def cmd_ship(args: argparse.Namespace) -> int:
    from adapters.audit_shipper import ship

    s = from_env()

    async def work(client: Any) -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await ship(client, s.audit_chain, args.group, args.consumer, Path(args.out) if args.out else None,
                          follow=not args.once, stop=stop)

    result = _host(args, work)
    print(f"shipped {result.shipped} events (last {result.last_id})", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from adapters.audit.queries import chain_status

    chain = from_env().audit_chain
    st = _host(args, lambda client: chain_status(client, chain))
    head = None if st.head is None else {"seq": st.head.seq, "id": st.head.id}
    cp = st.checkpoint
    checkpoint = None if cp is None else {"seq": cp.seq, "id": cp.id, "at": cp.at, "kid": cp.kid,
                                          "trim_event_seq": cp.trim_event_seq}
    if args.json:
        print(json.dumps({"chain": chain, "events_in_redis": st.length, "head": head, "checkpoint": checkpoint},
                         indent=2))
        return 0
    print(f"{'chain':16} {chain}")
    print(f"{'events in Redis':16} {st.length:,}")
    print(f"{'head':16} " + ("none: no event yet" if st.head is None else
                             f"seq {st.head.seq:,} (entry {st.head.id or '-'})"))
    print(f"{'checkpoint':16} " + ("none: nothing trimmed yet" if cp is None else
                                  f"seq {cp.seq:,} (entry {cp.id}) at {cp.at}, key {cp.kid}"
                                  + (f", recorded by event seq {cp.trim_event_seq:,}" if cp.trim_event_seq else "")))
    print("(not verified here: `hallgate audit verify` checks the chain)")
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    from adapters.audit.indexes import reindex

    result = _host(args, lambda client: reindex(client, from_env().audit_chain, batch=args.batch))
    print(f"indexed {result.events} events ({result.members} index entries); removed {result.swept} stale "
          f"index entries; indexes complete: queries by subscriber, staff, terminal, hall and call read them")
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    from adapters.audit.archiving import run

    s = from_env()
    if not s.audit_archive_url:
        print("no archive configured: set HALLGATE_AUDIT_ARCHIVE_URL (docs/audit.md, Archive)", file=sys.stderr)
        return 2
    actor = {"staff_id": os.environ.get("USER", "operator"), "role": "admin"}
    result = _host(args, lambda client: run(s, client, hot_days=args.hot_days, batch=args.batch,
                                            max_events=args.max_events or None, actor=actor))
    print(f"archived {result.archived} events, trimmed {result.trimmed} from Redis; archive at seq "
          f"{result.archive_last_seq}; {'complete' if result.complete else 'more to move: run again'}")
    return 0


def cmd_dispose(args: argparse.Namespace) -> int:
    from adapters.audit.archive import ArchiveConflict, PgAuditArchive
    from adapters.audit.disposal import DisposalRefused, dispose
    from gateway.runtime.bootstrap import audit_sink

    s = from_env()
    if not s.audit_archive_url:
        print("no archive configured: set HALLGATE_AUDIT_ARCHIVE_URL (docs/audit.md, Archive)", file=sys.stderr)
        return 2
    if args.retention_months < 1:
        print("--retention-months must be at least 1", file=sys.stderr)
        return 2
    keys, kid = s.audit_keys()
    actor = {"staff_id": os.environ.get("USER", "operator"), "role": "admin"}

    async def work(client: Any) -> Any:
        archive = PgAuditArchive(s.audit_archive_url)
        try:
            return await dispose(client, archive, s.audit_chain, keys, kid, retention_months=args.retention_months,
                                 sink=audit_sink(s, client), actor=actor, dry_run=args.dry_run)
        finally:
            await archive.close()

    try:
        result = _host(args, work)
    except DisposalRefused as e:
        print(f"REFUSED: {e}; nothing disposed", file=sys.stderr)
        return 1
    except ArchiveConflict as e:
        print(f"REFUSED: {e}", file=sys.stderr)
        return 1
    verb = "would destroy" if result.dry_run else "destroyed"
    for m in result.months:
        print(f"{verb} month {m.month}: seq {m.first_seq}..{m.last_seq}, {m.events} events"
              + ("" if m.event_seq is None else f"; recorded as event seq {m.event_seq}"
                 + (" (by the interrupted run before)" if m.resumed else "")))
    print(f"{len(result.months)} month(s), {result.events} events {verb}: past the {args.retention_months}-month "
          f"retention (months ending by {result.cutoff.isoformat(timespec='seconds')})"
          + (" (dry run: nothing changed)" if result.dry_run else ""))
    return 0
