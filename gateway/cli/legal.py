"""`hallgate legal …`: the branch legal department's terminal (R5), and offline verification of
delivery packages."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf import json_format

from gateway.cli import connect
from gateway.domain import delivery
from gateway.domain.errors import DependencyUnavailable
from gateway.domain.legal.ports import DocumentStore
from gateway.runtime.settings import from_env
from hallgate_pb.v1 import legal_pb2, legal_pb2_grpc

DECISIONS = {"approve": "ApproveRequest", "reject": "RejectRequest", "invalid": "MarkInvalid",
             "cancel": "CancelRequest"}


def add_commands(sub: Any) -> None:
    lg = connect.add_staff_terminal(sub, "legal", "the branch legal department's channel (law-enforcement requests)",
                                     "legal-B01-L01", "a legal officer, approver or auditor")
    rg = lg.add_parser("register", help="register a request from a JSON file (RegisterRequestRequest without the "
                                        "letter's content) and the scanned letter")
    rg.add_argument("request_json", help="the request as JSON; `hallgate legal example-request` writes one to start "
                                         "from, with today's dates")
    rg.add_argument("--letter", required=True, help="the scanned letter (PDF, JPEG or PNG)")
    rg.set_defaults(run=cmd_register)
    for name in DECISIONS:
        p = lg.add_parser(name, help=f"{name} a request, saying why")
        p.add_argument("request_id")
        p.add_argument("--reason", required=True)
        p.set_defaults(run=cmd_decide, decision=name)
    ex = lg.add_parser("example-request", help="print an example request (JSON for `register`) with dates "
                                               "relative to today: the letter dated a few days ago, the window "
                                               "the two calendar months before this one")
    ex.add_argument("--target-number", default="13800000002", help="the number asked about [13800000002]")
    ex.add_argument("--out", help="file to write [standard output]")
    ex.add_argument("--timezone", default=from_env().timezone, help="the operator's time zone [HALLGATE_TIMEZONE]")
    ex.set_defaults(run=cmd_example_request)
    ls = lg.add_parser("list", help="list requests")
    ls.add_argument("--state", default="", help="e.g. AWAITING_APPROVAL")
    ls.add_argument("--case-number", default="")
    ls.add_argument("--agency-name", default="")
    ls.add_argument("--json", action="store_true", help="one JSON object per request")
    ls.set_defaults(run=cmd_list)
    gt = lg.add_parser("get", help="show a request with its history")
    gt.add_argument("request_id")
    gt.add_argument("--json", action="store_true", help="the request as JSON (LegalRequest)")
    gt.add_argument("--timezone", default=from_env().timezone, help="time zone to show times in [HALLGATE_TIMEZONE]")
    gt.set_defaults(run=cmd_get)
    fu = lg.add_parser("fulfil", help="fulfil an approved request into a delivery package directory")
    fu.add_argument("request_id")
    fu.add_argument("--reason", required=True)
    fu.add_argument("--out", required=True, help="new directory (0700) for records.bin, manifest.json, manifest.sig "
                                                 "(0600)")
    fu.set_defaults(run=cmd_fulfil)
    ve = lg.add_parser("verify", help="offline: verify a delivery package (exactly records.bin, manifest.json and "
                                      "manifest.sig), its signature and content digest")
    ve.add_argument("directory")
    ve.add_argument("--public-key", required=True, help="the gateway's public key (PEM)")
    ve.set_defaults(run=cmd_verify)
    pk = lg.add_parser("public-key", help="host: print the gateway's delivery public key (PEM) and key id")
    pk.set_defaults(run=cmd_public_key)
    il = lg.add_parser("import-letters", help="host: copy the scanned letters of a file store (a gateway's "
                                              "<data-dir>/documents) into the shared store "
                                              "(HALLGATE_LEGAL_DOCUMENT_URL), each checked against its SHA-256; "
                                              "idempotent")
    il.add_argument("--from", dest="source", required=True, help="the file store's directory")
    il.set_defaults(run=cmd_import_letters)


def _stub(args: argparse.Namespace) -> tuple[Any, legal_pb2_grpc.LegalServiceStub]:
    channel = connect.channel(args)
    return channel, legal_pb2_grpc.LegalServiceStub(channel)


def _show(request: legal_pb2.LegalRequest) -> None:
    print(json_format.MessageToJson(request, indent=2, preserving_proto_field_name=True))


def _enum(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower().replace("_", " ")


def _when(ts: Any, zone: ZoneInfo) -> str:
    return "-" if not ts.seconds and not ts.nanos else f"{ts.ToDatetime(tzinfo=zone):%Y-%m-%d %H:%M %Z}"


def _text(r: legal_pb2.LegalRequest, tz: str) -> str:
    """A request for a person to read: what was asked, by whom, its state and its history."""
    zone = ZoneInfo(tz)
    rows = [("request", r.request_id), ("state", legal_pb2.RequestState.Name(r.state).removeprefix("REQUEST_STATE_")),
            ("agency", f"{r.agency.name} ({_enum(legal_pb2.AgencyKind, r.agency.kind, 'AGENCY_KIND_')}, "
                       f"{_enum(legal_pb2.AgencyLevel, r.agency.level, 'AGENCY_LEVEL_')} level)"),
            ("letter", f"{r.letter.reference} of {r.letter.date}, {r.letter.media_type}, {r.letter.size_bytes:,} "
                       f"bytes, sha256 {r.letter.sha256}"),
            ("legal basis", r.legal_basis), ("case number", r.case_number),
            ("officers", "; ".join(f"{o.name} (badge {o.badge_number})" for o in r.officers)),
            ("targets", ", ".join(r.targets)),
            ("categories", ", ".join(_enum(legal_pb2.DataCategory, c, "DATA_CATEGORY_") for c in r.categories)),
            ("window", f"{_when(r.window.start, zone)} to {_when(r.window.end, zone)}"),
            ("registered", f"by {r.registered_by} at {_when(r.registered_at, zone)}")]
    if r.approved_by:
        rows.append(("approved", f"by {r.approved_by} at {_when(r.approved_at, zone)}, lapses "
                                 f"{_when(r.approval_expires_at, zone)} unless fulfilled"))
    lines = [f"{k:12} {v}" for k, v in rows]
    if r.history:
        lines.append("history")
        for t in r.history:
            to_state = legal_pb2.RequestState.Name(t.to_state).removeprefix("REQUEST_STATE_")
            lines.append(f"  {_when(t.at, zone)}  {to_state:26} by {t.actor_staff_id} ({t.actor_role})"
                         + (f": {t.reason}" if t.reason else ""))
    return "\n".join(lines)


def example_request(today: date, tz: str, target: str = "13800000002") -> dict[str, Any]:
    """A request that registers today: the letter dated three days ago (at most today), the window
    the two calendar months before the current one, in the operator's zone (never in the future,
    within the billing simulator's six months)."""
    zone = ZoneInfo(tz)
    this_month = datetime(today.year, today.month, 1, tzinfo=zone)
    back = today.year * 12 + today.month - 1 - 2
    start = datetime(back // 12, back % 12 + 1, 1, tzinfo=zone)
    return {
        "agency": {"kind": "AGENCY_KIND_PUBLIC_SECURITY", "name": "Beijing Municipal Public Security Bureau",
                   "level": "AGENCY_LEVEL_PREFECTURE"},
        "letter": {"reference": f"JG-{today.year}-0412", "date": (today - timedelta(days=3)).isoformat(),
                   "media_type": "application/pdf"},
        "legal_basis": "Criminal Procedure Law art. 54; Telecommunications Regulations art. 66",
        "case_number": f"BJ-{today.year}-XS-0098",
        "officers": [{"name": "Wang Jun", "badge_number": "110233"}, {"name": "Li Na", "badge_number": "110417"}],
        "targets": [target],
        "categories": ["DATA_CATEGORY_SUBSCRIBER_INFO", "DATA_CATEGORY_CALL_DETAILS"],
        "window": {"start": start.isoformat(), "end": this_month.isoformat()},
    }


def cmd_example_request(args: argparse.Namespace) -> int:
    today = datetime.now(ZoneInfo(args.timezone)).date()
    text = json.dumps(example_request(today, args.timezone, args.target_number), ensure_ascii=False, indent=2) + "\n"
    json_format.Parse(text, legal_pb2.RegisterRequestRequest())  # what `register` will read
    if args.out:
        Path(args.out).write_text(text)
        print(f"example request written to {args.out}; register it with `hallgate legal register {args.out} "
              "--letter docs/examples/letter.pdf`", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    try:
        req = json_format.Parse(Path(args.request_json).read_text(), legal_pb2.RegisterRequestRequest())
    except json_format.ParseError as e:
        raise RuntimeError(f"{args.request_json} is not a request in JSON ({e}); `hallgate legal example-request` "
                           "writes one to start from") from None
    req.letter.content = Path(args.letter).read_bytes()
    channel, stub = _stub(args)
    with channel:
        reply = stub.RegisterRequest(req, metadata=connect.staff_metadata(args), timeout=60)
    print(reply.request.request_id)
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    method = DECISIONS[args.decision]
    request_type = getattr(legal_pb2, f"{method}Request")
    channel, stub = _stub(args)
    with channel:
        reply = getattr(stub, method)(request_type(request_id=args.request_id, reason=args.reason),
                                      metadata=connect.staff_metadata(args), timeout=30)
    print(f"{reply.request.request_id}: {legal_pb2.RequestState.Name(reply.request.state)}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    req = legal_pb2.ListRequestsRequest(state=f"REQUEST_STATE_{args.state}" if args.state else None,
                                        case_number=args.case_number, agency_name=args.agency_name)
    channel, stub = _stub(args)
    with channel:
        reply = stub.ListRequests(req, metadata=connect.staff_metadata(args), timeout=30)
    for r in reply.requests:
        if args.json:
            print(json_format.MessageToJson(r, indent=None, preserving_proto_field_name=True))
            continue
        print(f"{r.request_id}  {legal_pb2.RequestState.Name(r.state).removeprefix('REQUEST_STATE_'):24} "
              f"case {r.case_number:16} {r.agency.name}")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    channel, stub = _stub(args)
    with channel:
        reply = stub.GetRequest(legal_pb2.GetRequestRequest(request_id=args.request_id),
                                metadata=connect.staff_metadata(args), timeout=30)
    if args.json:
        _show(reply.request)
    else:
        print(_text(reply.request, args.timezone))
    return 0


def cmd_fulfil(args: argparse.Namespace) -> int:
    writer = delivery.PackageWriter(args.out)
    channel, stub = _stub(args)
    finished = False
    try:
        with channel:
            for part in stub.FulfilRequest(legal_pb2.FulfilRequestRequest(request_id=args.request_id,
                                                                          reason=args.reason),
                                           metadata=connect.staff_metadata(args), timeout=3600):
                kind = part.WhichOneof("part")
                if kind == "records":
                    writer.add_chunk(part.records)
                elif kind == "manifest":
                    writer.finish(part.manifest.manifest_json, part.manifest.signature)
                    finished = True
    finally:
        if not finished:
            writer.abort()  # records without a signed manifest are no delivery: nothing is kept
    if not finished:
        print("FAILED: the delivery stream ended without its signed manifest; nothing was kept", file=sys.stderr)
        return 1
    doc = json.loads((Path(args.out) / delivery.MANIFEST_FILE).read_text())
    print(f"delivery {doc['delivery_id']} written to {args.out}; verify it with `hallgate legal verify`")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """The same check and output as `python -m gateway.domain.delivery verify`."""
    return delivery.verify_command(args.directory, args.public_key)


def cmd_public_key(args: argparse.Namespace) -> int:
    s = from_env()
    path = s.legal_signing_key or str(Path(args.data_dir) / "legal-signing.pem")
    signer = delivery.Signer(delivery.load_private_key(path))
    sys.stdout.write(signer.public_pem().decode())
    print(f"key id {signer.key_id}", file=sys.stderr)
    return 0


@dataclass
class Imported:
    copied: int = 0  # stored now
    present: int = 0  # already in the shared store, intact
    damaged: list[str] = field(default_factory=list)  # files whose bytes are not their name's SHA-256
    ignored: list[str] = field(default_factory=list)  # not a letter of the file store's layout


def letter_files(source: Path) -> tuple[list[tuple[Path, str]], list[str]]:
    """The letters of a FileDocumentStore directory, `<source>/<first two hex>/<sha256>`, as (path,
    reference), and what else is there (e.g. a temporary file of an interrupted write)."""
    from adapters.document_store import REF_RE

    letters, other = [], []
    for path in sorted(p for p in source.rglob("*") if not p.is_dir()):
        ref = path.name
        if REF_RE.fullmatch(ref) and path.parent.parent == source and path.parent.name == ref[:2]:
            letters.append((path, ref))
        else:
            other.append(str(path.relative_to(source)))
    return letters, other


async def import_letters(source: Path, store: DocumentStore) -> Imported:
    """Every letter of a FileDocumentStore directory into `store`, one at a time: a file whose bytes
    do not hash to its name is not copied; a letter counts as copied once it reads back intact."""
    letters, other = await asyncio.to_thread(letter_files, source)
    result = Imported(ignored=other)
    for path, ref in letters:
        data = await asyncio.to_thread(path.read_bytes)
        if hashlib.sha256(data).hexdigest() != ref:
            result.damaged.append(ref)
            continue
        held = await store.get(ref)
        if held is not None and hashlib.sha256(held).hexdigest() == ref:
            result.present += 1
            continue
        if await store.put(data) != ref:
            raise RuntimeError(f"the store filed letter {ref} under another reference")
        back = await store.get(ref)
        if back is None or hashlib.sha256(back).hexdigest() != ref:
            raise RuntimeError(f"letter {ref} did not read back intact from the shared store")
        result.copied += 1
    return result


def cmd_import_letters(args: argparse.Namespace) -> int:
    from adapters.pg_documents import PgDocumentStore

    s = from_env()
    if not s.legal_document_url:
        print("no shared letter store configured: set HALLGATE_LEGAL_DOCUMENT_URL (README.md, Where letters live)",
              file=sys.stderr)
        return 2
    source = Path(args.source)
    if not source.is_dir():
        print(f"{source}: not a directory", file=sys.stderr)
        return 2

    async def go() -> Imported:
        store = PgDocumentStore(s.legal_document_url)
        try:
            return await import_letters(source, store)
        finally:
            await store.close()

    try:
        result = asyncio.run(go())
    except DependencyUnavailable:
        print("the shared letter store is unavailable; nothing more was copied (run again: it is idempotent)",
              file=sys.stderr)
        return 1
    for name in result.ignored:
        print(f"ignored {name}: not a letter file", file=sys.stderr)
    for ref in result.damaged:
        print(f"DAMAGED {ref}: its bytes do not match its SHA-256; not copied", file=sys.stderr)
    print(f"{result.copied} letters copied, {result.present} already in the shared store, "
          f"{len(result.damaged)} damaged")
    return 1 if result.damaged else 0
