"""The tamper-evident audit chain as pure logic: sealing events, checkpoints, verification, filters.

Nothing here touches Redis or gRPC, so the same code seals events in the gateway, verifies the
chain in Redis (adapters/audit/) and verifies a SIEM's JSON Lines copy offline.

An event is a flat map of strings. Sealing adds four fields:

    seq   1, 2, 3, ... without gaps along one chain
    prev  the `mac` of the event before it ("" before the first event)
    kid   the id of the key that made `mac` (keys can be rotated; old ids stay verifiable)
    mac   HMAC-SHA256(key, EVENT_DOMAIN || chain || canonical(every other field)), in hex

and the sink adds `eid`, 16 random hex digits, so that two calls with identical facts stay two
events while a retried append of the same event is recognised as already done.

`canonical` is deterministic JSON of the sorted fields, so the mac covers every field, the seq and
the link to the previous event, and the chain name (an event cannot be moved to another chain).
Without the key nobody can edit, delete, insert or reorder events without breaking a mac or a link;
only truncating the newest events needs an outside witness (the chain head, a shipped copy).

A checkpoint is signed the same way and stands in for the events retention has trimmed: the
first remaining event must link to the checkpoint's `mac` and follow its `seq`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from gateway.domain import rules

EVENT_DOMAIN = b"hallgate/audit/event/v1\x00"
CHECKPOINT_DOMAIN = b"hallgate/audit/checkpoint/v1\x00"
KEY_DERIVATION_LABEL = b"hallgate/audit/key/v1"
KEY_ID_LABEL = b"hallgate/audit/key-id/v1"

SEAL_FIELDS = ("seq", "prev", "kid", "mac")
EVENT_ID = "eid"  # random per event, set by the sink: tells a retried append from a new identical event
RECORD_FIELDS = ("chain", "id")  # added when an entry leaves Redis (query, export, shipping)
RESERVED = frozenset((*SEAL_FIELDS, EVENT_ID, *RECORD_FIELDS))
CHAIN_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MIN_KEY_BYTES = 16

# Why verification fails. The first three are the vocabulary.
EDITED = "edited"            # a field, the seq or the link of the event was changed: its mac fails
DELETED = "deleted"          # seq jumps and the missing events never show up (or the tail is gone)
REORDERED = "reordered"      # an event stands before or after where its seq says it belongs
FORKED = "forked"            # right seq and valid mac, but linked to a different predecessor
UNKNOWN_KEY = "unknown_key"  # sealed with a key id this verifier does not hold
CHECKPOINT = "checkpoint"    # the retention checkpoint is missing fields or its signature fails
REASONS = (EDITED, DELETED, REORDERED, FORKED, UNKNOWN_KEY, CHECKPOINT)


def check_chain_name(chain: str) -> str:
    """Chain names become Redis Cluster hash tags (`{main}`): no braces, colons or spaces."""
    if not CHAIN_NAME_RE.fullmatch(chain):
        raise ValueError(f"bad audit chain name {chain!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    return chain


# ---------------------------------------------------------------------------------------------
# Keys


def derive_key(secret: bytes) -> bytes:
    """The audit MAC key derived from the deployment's server secret (never the secret itself)."""
    return hmac.new(secret, KEY_DERIVATION_LABEL, hashlib.sha256).digest()


def key_id(key: bytes) -> str:
    """A stable, non-secret id for a key: `k` + 12 hex digits of a keyed fingerprint."""
    return "k" + hmac.new(key, KEY_ID_LABEL, hashlib.sha256).hexdigest()[:12]


def keyring(secret: bytes, retired: Iterable[bytes] = ()) -> tuple[dict[str, bytes], str]:
    """(keys, current key id) from the current server secret and any retired secrets whose
    events must stay verifiable after a rotation."""
    current = derive_key(secret)
    keys = {key_id(derive_key(s)): derive_key(s) for s in retired}
    keys[key_id(current)] = current
    return keys, key_id(current)


def parse_keys(spec: str) -> dict[str, bytes]:
    """`kid1:hexkey,kid2:hexkey` (e.g. from an environment variable) → {kid: key}."""
    keys: dict[str, bytes] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        kid, sep, hexkey = item.partition(":")
        if not sep or not kid:
            raise ValueError("audit keys: expected kid:hexkey[,kid:hexkey...]")
        try:
            keys[kid] = bytes.fromhex(hexkey)
        except ValueError:
            raise ValueError(f"audit key {kid!r}: not hex") from None
    return check_keys(keys)


def check_keys(keys: Mapping[str, bytes], current: str | None = None) -> dict[str, bytes]:
    if not keys:
        raise ValueError("no audit keys")
    for kid, key in keys.items():
        if not kid or len(key) < MIN_KEY_BYTES:
            raise ValueError(f"audit key {kid!r}: ids must be non-empty and keys at least {MIN_KEY_BYTES} bytes")
    if current is not None and current not in keys:
        raise ValueError(f"current audit key id {current!r} is not among the keys")
    return dict(keys)


# ---------------------------------------------------------------------------------------------
# Sealing


def normalise(event: Mapping[str, Any]) -> dict[str, str]:
    """The event as stored: every value a string (None → ""). Reserved names are refused, since
    a caller's `mac` or `seq` must never shadow the seal."""
    out: dict[str, str] = {}
    for k, v in event.items():
        if not isinstance(k, str) or not k:
            raise ValueError(f"audit field names must be non-empty strings, got {k!r}")
        if k in RESERVED:
            raise ValueError(f"audit field name {k!r} is reserved for the chain")
        out[k] = "" if v is None else str(v)
    return out


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical(fields_: Mapping[str, str]) -> bytes:
    """Deterministic bytes of a flat string map: JSON, keys sorted, no spaces, ASCII only."""
    return _CANONICAL.encode(fields_ if isinstance(fields_, dict) else dict(fields_)).encode("ascii")


def event_mac(key: bytes, chain: str, sealed: Mapping[str, str]) -> str:
    """The mac over every field but `mac` itself (so `seq`, `prev` and `kid` are covered)."""
    body = {k: v for k, v in sealed.items() if k != "mac"} if "mac" in sealed else sealed
    return hmac.new(key, EVENT_DOMAIN + chain.encode() + b"\x00" + canonical(body), hashlib.sha256).hexdigest()


def seal(chain: str, event: Mapping[str, str], seq: int, prev: str, kid: str, key: bytes) -> dict[str, str]:
    """The stored form of a normalised event: seq first (for people reading it), then the event's
    fields, then the link, key id and mac."""
    sealed = {"seq": str(seq), **event, "prev": prev, "kid": kid}
    sealed["mac"] = event_mac(key, chain, sealed)  # `event` is normalised: it holds no `mac` of its own
    return sealed


def mac_ok(chain: str, keys: Mapping[str, bytes], sealed: Mapping[str, str]) -> bool | None:
    """True/False whether the stored mac is right; None if the key id is unknown."""
    key = keys.get(sealed.get("kid", ""))
    if key is None:
        return None
    return hmac.compare_digest(event_mac(key, chain, sealed), sealed.get("mac", ""))


def seal_batch(chain: str, events: Iterable[Mapping[str, str]], head_seq: int, head_mac: str, kid: str,
               key: bytes) -> list[dict[str, str]]:
    """Seal events in order after the head (seq, mac) they extend."""
    out: list[dict[str, str]] = []
    seq, prev = head_seq, head_mac
    for event in events:
        seq += 1
        sealed = seal(chain, event, seq, prev, kid, key)
        prev = sealed["mac"]
        out.append(sealed)
    return out


# ---------------------------------------------------------------------------------------------
# Checkpoints


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """The one definition of what the trail records, of a call or of maintenance on the trail
    itself. No field holds a secret: a subscriber is masked and pseudonymised, never written as a
    number. `extra` holds the fields one kind of event adds (a trim's checkpoint)."""

    at: str
    channel: str
    method: str
    decision: str
    reason: str
    code: str
    hall: str = ""
    terminal: str = ""
    staff_id: str = ""
    role: str = ""
    proof: str = ""
    purpose: str = ""  # a counter session's purpose; events stored before it have no such field
    purpose_reason: str = ""  # the reason stated when that session was opened (its opening event only)
    peer: str = ""
    call: str = ""
    phase: str = ""
    subscriber: str = ""
    subscriber_ref: str = ""
    detail: str = ""
    records: int = 0
    duration_ms: float | str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _EVENT_FIELDS}
        out.update(self.extra)
        return out


_EVENT_FIELDS = tuple(f.name for f in fields(AuditEvent) if f.name != "extra")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Stands in for trimmed events: the last trimmed event's seq, mac and stream id, signed."""

    seq: int
    mac: str
    id: str
    at: str
    kid: str
    trim_event_seq: int = 0  # the seq of the audit event that recorded this trim
    sig: str = ""

    def payload(self) -> dict[str, str]:
        return {"seq": str(self.seq), "mac": self.mac, "id": self.id, "at": self.at, "kid": self.kid,
                "trim_event_seq": str(self.trim_event_seq)}

    def signed(self, chain: str, key: bytes) -> Checkpoint:
        return Checkpoint(self.seq, self.mac, self.id, self.at, self.kid, self.trim_event_seq,
                          _checkpoint_sig(key, chain, self.payload()))

    def as_fields(self) -> dict[str, str]:
        return {**self.payload(), "sig": self.sig}

    @classmethod
    def from_fields(cls, f: Mapping[str, str]) -> Checkpoint:
        """Raises ValueError when fields are missing or malformed."""
        try:
            return cls(int(f["seq"]), f["mac"], f["id"], f["at"], f["kid"], int(f.get("trim_event_seq") or 0),
                       f["sig"])
        except (KeyError, ValueError) as e:
            raise ValueError(f"malformed checkpoint: {e}") from None

    def valid(self, chain: str, keys: Mapping[str, bytes]) -> bool:
        key = keys.get(self.kid)
        return key is not None and hmac.compare_digest(_checkpoint_sig(key, chain, self.payload()), self.sig)


def _checkpoint_sig(key: bytes, chain: str, payload: Mapping[str, str]) -> str:
    return hmac.new(key, CHECKPOINT_DOMAIN + chain.encode() + b"\x00" + canonical(payload), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------------------------
# Verification


@dataclass(frozen=True, slots=True)
class Anchor:
    """What the first verified event must follow: seq and mac of the event just before it."""

    seq: int
    mac: str
    source: str  # genesis, checkpoint or predecessor


GENESIS = Anchor(0, "", "genesis")


@dataclass(frozen=True, slots=True)
class Head:
    """The chain head as stored next to the stream: the newest event's seq, mac and stream id."""

    seq: int
    mac: str
    id: str = ""


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """`first_bad_seq` is the seq at which the chain first breaks: the edited event, the first
    deleted event, or the seq that should stand where the misplaced event stands.
    `first_bad_id` is the stream id of the entry where the break shows (for a deletion: the entry
    that follows the gap, or the deleted entry's id when the head still remembers it).
    `found_seq` is the seq that entry claims."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    first_bad_id: str | None = None
    reason: str | None = None
    detail: str = ""
    found_seq: int | None = None
    last_seq: int | None = None
    last_id: str | None = None
    anchor: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class IncrementalResult:
    """The verdict of an incremental verification (adapters/audit/checkpoints.py). `result.anchor`
    says where it started: "verified" (after the last verified position: only newer events were
    read), "checkpoint" (the retention trim's checkpoint) or "genesis". `rejected` says why a stored
    verified position was not used (forged, malformed, its event changed or gone; "" when none was
    stored or it was used); `recorded_seq` is the seq of the verified position this run recorded."""

    result: VerifyResult
    rejected: str = ""
    recorded_seq: int | None = None
    started_after_seq: int = 0  # the run checked the events after this seq
    checkpoint_seq: int = 0  # the retention trim's checkpoint (0: none)
    verified_through_seq: int = 0  # the verified position after the run (recorded, or the one it started from)


class ChainBroken(Exception):
    """Raised where continuing would destroy evidence (e.g. trimming a broken chain)."""

    def __init__(self, result: VerifyResult) -> None:
        super().__init__(f"audit chain broken at seq {result.first_bad_seq} ({result.reason}): {result.detail}")
        self.result = result


@dataclass(slots=True)
class _Gap:
    missing_from: int
    missing_to: int
    at_id: str
    found_seq: int


@dataclass(slots=True)
class Verifier:
    """Checks entries fed in stream order against one chain. Memory is constant: a gap is
    classified (deleted vs reordered) by watching whether a missing seq turns up later.

    `anchor=None` accepts the first entry's own seq and prev (a range whose predecessor cannot be
    trusted). `head` (snapshotted before the scan) lets `result` notice a deleted tail.
    `end_seq` ends a seq range."""

    chain: str
    keys: Mapping[str, bytes]
    anchor: Anchor | None = GENESIS
    head: Head | None = None
    end_seq: int | None = None
    checked: int = 0
    expected: int | None = None
    prev_mac: str | None = None
    last_id: str | None = None
    _broken: VerifyResult | None = None
    _gap: _Gap | None = None
    _head_mac_seen: str | None = field(default=None)

    def __post_init__(self) -> None:
        if self.anchor is not None:
            self.expected, self.prev_mac = self.anchor.seq + 1, self.anchor.mac

    @property
    def wants_more(self) -> bool:
        """False once the outcome is settled or the seq range is complete."""
        if self._broken is not None:
            return False
        if self._gap is not None:
            return True
        return not (self.end_seq is not None and self.expected is not None and self.expected > self.end_seq)

    def _break(self, seq: int | None, entry_id: str | None, reason: str, detail: str,
               found: int | None = None) -> None:
        self._broken = VerifyResult(False, self.checked, seq, entry_id, reason, detail, found,
                                    self.expected - 1 if self.expected is not None else None, self.last_id,
                                    self.anchor.source if self.anchor else "first")

    def feed(self, entry_id: str, entry: Mapping[str, str]) -> None:
        if not self.wants_more:
            return
        seq = _int(entry.get("seq"))
        ok = mac_ok(self.chain, self.keys, entry)
        if self._gap is not None:  # only looking for the missing seqs now
            if ok and seq is not None and self._gap.missing_from <= seq <= self._gap.missing_to:
                g = self._gap
                self._break(g.missing_from, g.at_id, REORDERED,
                            f"seq {g.found_seq} stands where seq {g.missing_from} belongs; "
                            f"seq {seq} comes later at {entry_id}", g.found_seq)
            return
        where = self.expected if self.expected is not None else seq
        if ok is None:
            self._break(where, entry_id, UNKNOWN_KEY, f"key id {entry.get('kid', '')!r} is not known", seq)
            return
        if not ok or seq is None:
            self._break(where, entry_id, EDITED, "the mac does not match the stored fields", seq)
            return
        prev = entry.get("prev", "")
        if self.expected is None:  # unanchored range: the first event defines where it starts
            self.expected, self.prev_mac = seq, prev
        if seq > self.expected:
            self._gap = _Gap(self.expected, seq - 1, entry_id, seq)
            return
        if seq < self.expected:
            self._break(self.expected, entry_id, REORDERED,
                        f"seq {seq} comes after seq {self.expected - 1}", seq)
            return
        if not hmac.compare_digest(prev, self.prev_mac or ""):
            self._break(seq, entry_id, FORKED, "valid event whose prev is not the preceding event's mac", seq)
            return
        self.checked += 1
        self.expected, self.prev_mac, self.last_id = seq + 1, entry["mac"], entry_id
        if self.head is not None and seq == self.head.seq:
            self._head_mac_seen = entry["mac"]

    def result(self, at_stream_end: bool = True) -> VerifyResult:
        """The verdict. `at_stream_end`: the scan reached the newest entry, so the head applies."""
        if self._broken is None and self._gap is not None:
            g = self._gap
            count = g.missing_to - g.missing_from + 1
            self._break(g.missing_from, g.at_id, DELETED,
                        f"{count} event(s) {g.missing_from}..{g.missing_to} missing before seq {g.found_seq}",
                        g.found_seq)
        if self._broken is None and at_stream_end and self.head is not None and self.expected is not None:
            last = self.expected - 1
            top = self.head.seq if self.end_seq is None else min(self.head.seq, self.end_seq)
            if last < top:
                missing = last + 1
                self._break(missing, self.head.id if self.head.seq == missing else None, DELETED,
                            f"the head is at seq {self.head.seq} but the stream ends at seq {last}")
            elif self._head_mac_seen is not None and not hmac.compare_digest(self._head_mac_seen, self.head.mac):
                self._break(self.head.seq, self.head.id or None, EDITED, "the chain head does not match its event")
        if self._broken is not None:
            return self._broken
        return VerifyResult(True, self.checked, last_seq=self.expected - 1 if self.expected is not None else None,
                            last_id=self.last_id, anchor=self.anchor.source if self.anchor else "first")


def anchor_from_checkpoint(chain: str, keys: Mapping[str, bytes],
                           cp_fields: Mapping[str, str] | None) -> Anchor | VerifyResult:
    """GENESIS without a checkpoint, the checkpoint's anchor when its signature holds, else a
    failed VerifyResult."""
    if not cp_fields:
        return GENESIS
    try:
        cp = Checkpoint.from_fields(cp_fields)
    except ValueError as e:
        return VerifyResult(False, 0, None, None, CHECKPOINT, str(e), anchor="checkpoint")
    if not cp.valid(chain, keys):
        why = "unknown key id" if cp.kid not in keys else "signature does not match"
        return VerifyResult(False, 0, cp.seq + 1, None, CHECKPOINT, f"checkpoint {why}", anchor="checkpoint")
    return Anchor(cp.seq, cp.mac, "checkpoint")


def verify_entries(chain: str, keys: Mapping[str, bytes], entries: Iterable[tuple[str, Mapping[str, str]]],
                   anchor: Anchor | None = GENESIS, head: Head | None = None) -> VerifyResult:
    """Verify entries (stream id, stored fields) in order, e.g. a shipped JSON Lines file."""
    v = Verifier(chain, keys, anchor, head)
    for entry_id, entry in entries:
        v.feed(entry_id, entry)
        if not v.wants_more:
            break
    return v.result()


def _int(v: str | None) -> int | None:
    try:
        return int(v) if v is not None and v.isdigit() else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Stream ids, time and retention


def stream_id_at(moment: datetime) -> str:
    """The smallest stream id at or after a moment (stream ids are Redis-clock milliseconds)."""
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return f"{max(0, int(moment.timestamp() * 1000))}-0"  # nothing is older than the epoch: Redis ids start at 0


def parse_stream_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def time_of(entry_id: str) -> datetime:
    return datetime.fromtimestamp(parse_stream_id(entry_id)[0] / 1000, UTC)


DEFAULT_RETENTION_MONTHS = 12


def retention_cutoff(now: datetime, months: int = DEFAULT_RETENTION_MONTHS) -> datetime:
    """`now` minus whole calendar months (the day clamped to the month's end): events before it
    are past retention."""
    if months < 1:
        raise ValueError("audit retention must be at least one month")
    index = now.year * 12 + now.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    days = [31, 29 if (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 else 28, 31, 30, 31, 30, 31, 31, 30,
            31, 30, 31][month - 1]
    return now.replace(year=year, month=month, day=min(now.day, days))


# ---------------------------------------------------------------------------------------------
# Queries and JSON Lines


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Exact-match criteria (None: any). `start` is inclusive and `end` exclusive, both compared
    with the stream id's time (the Redis clock at append), which is also what retention uses.
    `subscriber` takes a full number (masked here the way events store it) or a masked one;
    since masks are shared by many numbers, it matches every number with that mask."""

    subscriber: str | None = None
    staff_id: str | None = None
    terminal: str | None = None
    hall: str | None = None
    method: str | None = None
    decision: str | None = None
    channel: str | None = None
    role: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    extra: tuple[tuple[str, str], ...] = ()  # (field, value) pairs for fields added later
    subscriber_ref: str | None = None  # keyed pseudonym; matches events naming it among several

    def __post_init__(self) -> None:
        for moment in (self.start, self.end):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("audit times must be timezone-aware")

    def criteria(self) -> dict[str, str]:
        names = ("staff_id", "terminal", "hall", "method", "decision", "channel", "role")
        out = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        out.update(self.extra)
        if self.subscriber is not None:
            full = rules.MSISDN_RE.fullmatch(self.subscriber)
            out["subscriber"] = rules.mask_msisdn(self.subscriber) if full else self.subscriber
        return out

    def id_range(self) -> tuple[str, str]:
        """XRANGE bounds: (min, max); max is exclusive when it starts with "("."""
        low = stream_id_at(self.start) if self.start is not None else "-"
        high = "+" if self.end is None else stream_id_at(self.end)
        # Before 0-0 there is nothing; "(0-0" is an error to Redis, while "0-0" (never an entry's
        # id) asks for nothing, as an end at or before the epoch should.
        return low, high if high in ("+", "0-0") else "(" + high

    def matches(self, entry_id: str, entry: Mapping[str, str]) -> bool:
        if self.start is not None or self.end is not None:
            at = parse_stream_id(entry_id)
            if self.start is not None and at < parse_stream_id(stream_id_at(self.start)):
                return False
            if self.end is not None and at >= parse_stream_id(stream_id_at(self.end)):
                return False
        if self.subscriber_ref is not None and self.subscriber_ref not in entry.get("subscriber_ref", "").split(","):
            return False
        return all(entry.get(k, "") == v for k, v in self.criteria().items())


def record(chain: str, entry_id: str, entry: Mapping[str, str]) -> dict[str, str]:
    """An entry as it leaves Redis: chain and stream id first, then the stored fields."""
    return {"chain": chain, "id": entry_id, **entry}


def to_json_line(rec: Mapping[str, str]) -> str:
    """One JSON Lines line (with the trailing newline) for a record."""
    return json.dumps(dict(rec), ensure_ascii=False, separators=(",", ":")) + "\n"


def from_json_line(line: str) -> tuple[str, str, dict[str, str]]:
    """(chain, stream id, stored fields) from a line written by `to_json_line`."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("an audit line must be a JSON object")
    chain, entry_id = str(data.pop("chain")), str(data.pop("id"))
    return chain, entry_id, {str(k): str(v) for k, v in data.items()}


# ---------------------------------------------------------------------------------------------
# Durability


def durability_mode(version: str, aof_enabled: bool, appendfsync: str | None) -> str | None:
    """How an append can know it is on disk: "waitaof" (Redis ≥ 7.2: WAITAOF 1 0 after each
    append), "always" (AOF with appendfsync always: Redis replies after the fsync), or None."""
    if not aof_enabled:
        return None
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:
        major, minor = 0, 0
    if (major, minor) >= (7, 2):
        return "waitaof"
    if appendfsync == "always":
        return "always"
    return None


# ---------------------------------------------------------------------------------------------
# Exported files


@dataclass(frozen=True, slots=True)
class ExportCheck:
    """The verdict on an exported file (ExportEvents, JSON Lines): `ok` when every line is an event
    of `chain` whose seal holds under the audit keys and every two lines with consecutive seqs link.
    A filtered export has gaps (other events), so it proves each event, not that none is missing;
    an unfiltered one is also checked as a whole chain (`whole`)."""

    ok: bool
    events: int
    first_seq: int = 0
    last_seq: int = 0
    linked: int = 0  # pairs of consecutive seqs whose link was checked
    bad_line: int = 0  # the first line that fails (1-based), when not ok
    why: str = ""
    whole: bool = False  # the lines are one unbroken run of seqs, verified as a chain from the first


def check_export(chain: str, keys: Mapping[str, bytes], lines: Iterable[str]) -> ExportCheck:
    """Check an exported file's lines (see ExportCheck); the first bad line is named."""
    previous: dict[str, str] | None = None
    entries: list[tuple[str, dict[str, str]]] = []
    first = last = linked = 0
    for n, line in enumerate((ln for ln in lines if ln.strip()), 1):
        try:
            named, entry_id, ev = from_json_line(line)
            seq = int(ev["seq"])
        except (ValueError, KeyError) as err:
            return ExportCheck(False, n - 1, first, last, linked, n, f"not an exported audit event ({err})")
        if named != chain:
            return ExportCheck(False, n - 1, first, last, linked, n, f"an event of another chain ({named})")
        sealed = mac_ok(chain, keys, ev)
        if sealed is None:
            why = f"sealed under an unknown key id {ev.get('kid')!r}"
            return ExportCheck(False, n - 1, first, last, linked, n, why)
        if not sealed:
            return ExportCheck(False, n - 1, first, last, linked, n, "the seal does not hold: the event was changed")
        if previous is not None:
            if seq <= int(previous["seq"]):
                return ExportCheck(False, n - 1, first, last, linked, n, "out of order")
            if seq == int(previous["seq"]) + 1:
                if ev.get("prev") != previous.get("mac"):
                    return ExportCheck(False, n - 1, first, last, linked, n, "not linked to the line before")
                linked += 1
        first = first or seq
        last, previous = seq, ev
        entries.append((entry_id, ev))
    whole = bool(entries) and linked == len(entries) - 1
    return ExportCheck(True, len(entries), first, last, linked, whole=whole)
