"""The SMSC: SMPP 3.4 sessions on one loopback port, a one-line-per-command control port on another.

Everything that happens to a PDU happens synchronously in `Smsc._dispatch` between two reads of
the same connection, so the state (sessions, counters, controls, concatenation buffers) needs no
locks. Timers (delivery receipts, held messages) are loop callbacks that only write to sockets.

Message texts are written to the outbox and nowhere else: logs carry ids, lengths, counts,
commands and statuses only (never a text, an address or the password).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import hmac
import itertools
import json
import logging
import os
import secrets
import signal
import struct
import sys
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adapters.smsc_sim.pdu import (
    BIND_COMMANDS,
    HEADER_LENGTH,
    MAX_PDU_LENGTH,
    PASSWORD_MAX,
    SYSTEM_ID_MAX,
    Command,
    Header,
    MessageState,
    PduError,
    ShortMessage,
    Status,
    Tag,
    decode_bind,
    decode_short_message,
    encode_bind_resp,
    encode_message_id,
    encode_pdu,
    encode_short_message,
    generic_nack,
    parse_smpp_time,
    response_id,
)
from adapters.smsc_sim.text import Concat, decode_text, encode_gsm, user_data

log = logging.getLogger("smsc_sim")

SMSC_SYSTEM_ID = "smsc-sim"  # what bind_*_resp carries
DEFAULT_PASSWORD = "sim-pass"  # noqa: S105 - the documented development default, not a secret
PASSWORD_ENV = "HALLGATE_SMSC_SIM_PASSWORD"  # noqa: S105 - a variable name
PENDING_RECEIPTS_MAX = 10_000  # receipts waiting for a receiver-capable session to bind
HELD_MAX = 10_000  # messages held for unreachable numbers; beyond it submit_sm gets ESME_RMSGQFUL
ASSEMBLIES_MAX = 10_000  # incomplete concatenated messages; the oldest is forgotten beyond it
ASSEMBLY_TTL = 300.0  # seconds an incomplete concatenated message waits for its other segments
UNREACHABLE_HOLD = 60.0  # seconds a message to an unreachable number is held without validity_period
MAX_CONNECTIONS = 256
MAX_CONTROL_CONNECTIONS = 32
CONTROL_LINE_MAX = 1024
CONTROL_LINES_PER_CONNECTION = 10_000
MSISDN_SET_MAX = 10_000
WRITE_BUFFER_MAX = 4 * 1024 * 1024  # a peer that does not read its receipts is disconnected
RECEIPT_TEXT_CHARS = 20

BIND_MODES = {Command.BIND_TRANSMITTER: "transmitter", Command.BIND_RECEIVER: "receiver",
              Command.BIND_TRANSCEIVER: "transceiver"}
IGNORED_RESPONSES = {Command.DELIVER_SM_RESP, Command.ENQUIRE_LINK_RESP, Command.UNBIND_RESP, Command.GENERIC_NACK}

DELIVRD, UNDELIV, EXPIRED = "DELIVRD", "UNDELIV", "EXPIRED"
OUTCOMES = {DELIVRD: (0, MessageState.DELIVERED), UNDELIV: (1, MessageState.UNDELIVERABLE),
            EXPIRED: (0, MessageState.EXPIRED)}


@dataclass(frozen=True)
class Config:
    system_id: str
    password: str = field(repr=False)
    outbox: Path
    receipt_delay: float = 0.05
    listen: tuple[str, int] = ("127.0.0.1", 2775)
    control: tuple[str, int] = ("127.0.0.1", 0)


@dataclass
class Stats:
    binds: int = 0
    bind_failures: int = 0
    connections: int = 0
    submits: int = 0
    accepted: int = 0
    throttled: int = 0
    receipts_sent: int = 0
    enquire_links: int = 0
    dropped_connections: int = 0


@dataclass
class Controls:
    throttle: int = 0
    drop_after: int | None = None
    receipts: bool = True
    fail_binds: bool = False
    undeliverable: set[str] = field(default_factory=set)
    unreachable: set[str] = field(default_factory=set)


class Session:
    """One SMPP connection and its bind state."""

    def __init__(self, sid: int, writer: asyncio.StreamWriter) -> None:
        self.sid = sid
        self.writer = writer
        self.mode: str | None = None
        self.closed = False
        self._sequence = 0

    @property
    def can_transmit(self) -> bool:
        return self.mode in ("transmitter", "transceiver")

    @property
    def can_receive(self) -> bool:
        return self.mode in ("receiver", "transceiver") and not self.closed

    def next_sequence(self) -> int:
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        return self._sequence

    def send(self, data: bytes) -> bool:
        transport = self.writer.transport
        if self.closed or transport.is_closing():
            return False
        self.writer.write(data)
        if transport.get_write_buffer_size() > WRITE_BUFFER_MAX:
            log.warning("session %d: peer does not read (%d octets queued); closing", self.sid,
                        transport.get_write_buffer_size())
            self.close()
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()


@dataclass
class Segment:
    message_id: str
    seq: int
    payload: bytes
    submitted_at: datetime
    expires_at: datetime | None
    registered_delivery: int
    session: Session


@dataclass
class Assembly:
    created: float
    total: int
    data_coding: int
    segments: dict[int, Segment] = field(default_factory=dict)


@dataclass
class Receipt:
    message_id: str
    outcome: str
    submitted_at: datetime
    text: str  # the first characters of the segment, as real SMSCs quote them
    phone: tuple[int, int, bytes]  # ton, npi, address of the phone (the receipt's source)
    esme: tuple[int, int, bytes]  # ton, npi, address of the submitter (the receipt's destination)
    session: Session
    done_at: datetime | None = None


class Outbox:
    """The JSON Lines file of what the phones received: mode 0600, flock, one write per line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            with contextlib.suppress(PermissionError):
                os.fchmod(fd, 0o600)  # it holds one-time codes: never wider than its owner
        finally:
            os.close(fd)

    def append(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write to the outbox ({written} of {len(data)} octets)")
        finally:
            os.close(fd)


def _wants_receipt(registered_delivery: int, outcome: str) -> bool:
    """registered_delivery bits 1-0: 01 a receipt whatever the outcome, 10 only on failure."""
    mode = registered_delivery & 0x03
    return mode in (1, 3) or (mode == 2 and outcome != DELIVRD)


def _addr(raw: bytes) -> str:
    return raw.decode("ascii", "replace")


class Smsc:
    """The simulated SMS centre; `handle_smpp` and `handle_control` are asyncio server callbacks."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stats = Stats()
        self.controls = Controls()
        self.outbox = Outbox(config.outbox)
        self.sessions: dict[int, Session] = {}
        self.pending: deque[Receipt] = deque()
        self.assemblies: OrderedDict[tuple[bytes, bytes, str, int, int], Assembly] = OrderedDict()
        self._system_id = config.system_id.encode()
        self._password = config.password.encode()
        self._session_ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4)  # message ids are unique per process run
        self._id_counter = itertools.count(1)
        self._timer_ids = itertools.count(1)
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._held = 0
        self._handlers: set[asyncio.Task[Any]] = set()
        self._control_connections = 0

    # --- SMPP connections ------------------------------------------------------------------

    async def handle_smpp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.sessions) >= MAX_CONNECTIONS:
            log.warning("connection refused: %d connections open", len(self.sessions))
            writer.close()
            return
        session = Session(next(self._session_ids), writer)
        self.sessions[session.sid] = session
        self.stats.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        log.info("session %d: connected", session.sid)
        try:
            await self._serve(session, reader)
        except Exception as exc:  # a bug here must not take the SMSC down; its text may hold data
            log.error("session %d: internal error %s", session.sid, type(exc).__name__)
        finally:
            self._forget(session)
            if task is not None:
                self._handlers.discard(task)
            log.info("session %d: closed", session.sid)

    def _forget(self, session: Session) -> None:
        if self.sessions.pop(session.sid, None) is not None:
            self.stats.connections -= 1
        session.close()

    async def _serve(self, session: Session, reader: asyncio.StreamReader) -> None:
        while not session.closed:
            try:
                head = await reader.readexactly(4)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            (length,) = struct.unpack("!I", head)
            if not HEADER_LENGTH <= length <= MAX_PDU_LENGTH:
                # The framing is lost: answer as well as we can, then hang up.
                sequence = await self._salvage_sequence(reader)
                log.warning("session %d: command_length %d out of bounds -> generic_nack ESME_RINVCMDLEN",
                            session.sid, length)
                session.send(generic_nack(Status.ESME_RINVCMDLEN, sequence))
                return
            try:
                rest = await reader.readexactly(length - 4)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            command_id, status, sequence = struct.unpack_from("!III", rest, 0)
            if not self._dispatch(session, Header(length, command_id, status, sequence), rest[12:]):
                return
            try:
                await session.writer.drain()
            except ConnectionError:
                return

    @staticmethod
    async def _salvage_sequence(reader: asyncio.StreamReader) -> int:
        """The sequence_number of a PDU whose length is bogus, if the rest of its header follows."""
        try:
            rest = await asyncio.wait_for(reader.readexactly(12), 0.2)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return 0
        value: int = struct.unpack_from("!I", rest, 8)[0]
        return value

    def _dispatch(self, session: Session, header: Header, body: bytes) -> bool:
        """Answers one PDU; False when the connection is to be closed."""
        command = header.command_id
        if header.is_response:
            if command not in IGNORED_RESPONSES:
                log.info("session %d: unexpected response 0x%08x ignored", session.sid, command)
            return True
        if command in BIND_COMMANDS:
            return self._bind(session, header, body)
        if command == Command.SUBMIT_SM:
            return self._submit(session, header, body)
        if command == Command.ENQUIRE_LINK:
            self.stats.enquire_links += 1
            session.send(encode_pdu(Command.ENQUIRE_LINK_RESP, header.sequence))
            return True
        if command == Command.UNBIND:
            log.info("session %d: unbind", session.sid)
            session.send(encode_pdu(Command.UNBIND_RESP, header.sequence))
            return False
        log.warning("session %d: command_id 0x%08x not supported -> generic_nack ESME_RINVCMDID",
                    session.sid, command)
        session.send(generic_nack(Status.ESME_RINVCMDID, header.sequence))
        return True

    def _bind(self, session: Session, header: Header, body: bytes) -> bool:
        mode = BIND_MODES[Command(header.command_id)]
        try:
            bind = decode_bind(body)
        except PduError as exc:
            log.warning("session %d: malformed bind_%s (%s) -> generic_nack", session.sid, mode, exc.reason)
            session.send(generic_nack(exc.status, header.sequence))
            return True

        def answer(status: Status) -> None:
            session.send(encode_pdu(response_id(header.command_id), header.sequence,
                                    encode_bind_resp(SMSC_SYSTEM_ID), status))

        if session.mode is not None:
            log.info("session %d: bind_%s while bound as %s -> ESME_RALYBND", session.sid, mode, session.mode)
            self.stats.bind_failures += 1
            answer(Status.ESME_RALYBND)
            return True
        if self.controls.fail_binds:
            status = Status.ESME_RBINDFAIL
        elif not hmac.compare_digest(bind.system_id, self._system_id):
            status = Status.ESME_RINVSYSID
        elif not hmac.compare_digest(bind.password, self._password):
            status = Status.ESME_RINVPASWD
        else:
            status = Status.ESME_ROK
        if status != Status.ESME_ROK:
            self.stats.bind_failures += 1
            log.info("session %d: bind_%s -> %s; closing", session.sid, mode, status.name)
            answer(status)
            return False
        session.mode = mode
        self.stats.binds += 1
        log.info("session %d: bound as %s (interface_version 0x%02x)", session.sid, mode, bind.interface_version)
        answer(Status.ESME_ROK)
        if session.can_receive and self.pending:
            self._flush_pending(session)
        return True

    def _submit(self, session: Session, header: Header, body: bytes) -> bool:
        self.stats.submits += 1

        def answer(status: Status, message_id: str = "") -> None:
            payload = encode_message_id(message_id) if status == Status.ESME_ROK else b""
            session.send(encode_pdu(Command.SUBMIT_SM_RESP, header.sequence, payload, status))
            if status != Status.ESME_ROK:
                log.info("session %d: submit_sm seq %d -> %s", session.sid, header.sequence, status.name)

        if not session.can_transmit:
            answer(Status.ESME_RINVBNDSTS)
            return True
        if self.controls.drop_after == 0:
            self.controls.drop_after = None
            self._drop_all()
            return False
        try:
            sm = decode_short_message(body)
            data = user_data(sm)
        except PduError as exc:
            log.warning("session %d: malformed submit_sm (%s) -> %s", session.sid, exc.reason, exc.status.name)
            if exc.status == Status.ESME_RINVCMDLEN:
                session.send(generic_nack(exc.status, header.sequence))
            else:
                answer(exc.status)
            return True
        if self.controls.throttle > 0:
            self.controls.throttle -= 1
            self.stats.throttled += 1
            answer(Status.ESME_RTHROTTLED)
            return True
        now = datetime.now(UTC)
        try:
            parse_smpp_time(sm.schedule_delivery_time, now)  # delivery is immediate; the format is checked
        except ValueError:
            answer(Status.ESME_RINVSCHED)
            return True
        try:
            expires = parse_smpp_time(sm.validity_period, now)
        except ValueError:
            answer(Status.ESME_RINVEXPIRY)
            return True
        if expires is not None and expires <= now:
            answer(Status.ESME_RINVEXPIRY)
            return True
        if not sm.destination_addr:
            answer(Status.ESME_RINVDSTADR)
            return True
        if _addr(sm.destination_addr) in self.controls.unreachable and self._held >= HELD_MAX:
            answer(Status.ESME_RMSGQFUL)
            return True
        message_id = f"{self._id_prefix}{next(self._id_counter):08x}"
        segment = Segment(message_id, data.concat.seq if data.concat else 1, data.payload, now, expires,
                          sm.registered_delivery, session)
        try:
            self._add_segment(sm, data.data_coding, data.concat, segment)
        except OSError as exc:
            log.error("outbox write failed (%s) for id %s", type(exc).__name__, message_id)
            answer(Status.ESME_RSYSERR)
            return True
        answer(Status.ESME_ROK, message_id)
        self.stats.accepted += 1
        if self.controls.drop_after is not None:
            self.controls.drop_after -= 1
        log.info("session %d: submit_sm seq %d -> id %s (segment %s, %d octets, data_coding 0x%02x)",
                 session.sid, header.sequence, message_id,
                 f"{data.concat.seq}/{data.concat.total}" if data.concat else "1/1", len(data.payload),
                 data.data_coding)
        return True

    def _drop_all(self) -> None:
        """An SMSC crash: every SMPP connection goes, the submit in hand is neither answered nor kept."""
        sessions = list(self.sessions.values())
        for s in sessions:
            self._forget(s)
        self.stats.dropped_connections += len(sessions)
        log.warning("drop-after reached: closed %d connections without answering", len(sessions))

    # --- messages and receipts -------------------------------------------------------------

    def _add_segment(self, sm: ShortMessage, data_coding: int, concat: Concat | None, segment: Segment) -> None:
        if concat is None:
            self._complete(sm, data_coding, [segment])
            return
        key = (sm.source_addr, sm.destination_addr, concat.kind, concat.ref, concat.total)
        assembly = self.assemblies.get(key)
        now = time.monotonic()
        if assembly is None or now - assembly.created > ASSEMBLY_TTL or segment.seq in assembly.segments:
            if assembly is not None:
                log.info("incomplete concatenated message discarded (%d of %d segments)",
                         len(assembly.segments), assembly.total)
                del self.assemblies[key]
            assembly = Assembly(now, concat.total, data_coding)
            self.assemblies[key] = assembly
            while len(self.assemblies) > ASSEMBLIES_MAX:
                _, oldest = self.assemblies.popitem(last=False)
                log.warning("incomplete concatenated message evicted (%d of %d segments)",
                            len(oldest.segments), oldest.total)
        assembly.segments[segment.seq] = segment
        if len(assembly.segments) == assembly.total:
            del self.assemblies[key]
            self._complete(sm, assembly.data_coding, [assembly.segments[i] for i in sorted(assembly.segments)])

    def _complete(self, sm: ShortMessage, data_coding: int, segments: list[Segment]) -> None:
        """All segments are in: the phone gets the message (or not), receipts are scheduled."""
        to = _addr(sm.destination_addr)
        text = decode_text(data_coding, b"".join(s.payload for s in segments))
        ids = [s.message_id for s in segments]
        if to in self.controls.undeliverable:
            outcome = UNDELIV
        elif to in self.controls.unreachable:
            outcome = EXPIRED
        else:
            outcome = DELIVRD
            self.outbox.append({"at": datetime.now(UTC).isoformat(), "to": to, "from": _addr(sm.source_addr),
                                "text": text, "ids": ids, "segments": len(segments), "data_coding": data_coding})
        log.info("message ids=%s segments=%d chars=%d -> %s", ",".join(ids), len(segments), len(text), outcome)
        loop = asyncio.get_running_loop()
        for s in segments:
            if not _wants_receipt(s.registered_delivery, outcome):
                continue
            receipt = Receipt(s.message_id, outcome, s.submitted_at,
                              decode_text(data_coding, s.payload)[:RECEIPT_TEXT_CHARS],
                              (sm.dest_addr_ton, sm.dest_addr_npi, sm.destination_addr),
                              (sm.source_addr_ton, sm.source_addr_npi, sm.source_addr), s.session)
            if outcome == EXPIRED:
                expires = s.expires_at or s.submitted_at + timedelta(seconds=UNREACHABLE_HOLD)
                delay = max(0.0, (expires - datetime.now(UTC)).total_seconds())
                self._held += 1
            else:
                delay = self.config.receipt_delay
            key = next(self._timer_ids)
            self._timers[key] = loop.call_later(delay, self._fire, key, receipt)

    def _fire(self, key: int, receipt: Receipt) -> None:
        self._timers.pop(key, None)
        if receipt.outcome == EXPIRED:
            self._held -= 1
        receipt.done_at = datetime.now(UTC)
        self._send_receipt(receipt, None)

    def _receiver_for(self, preferred: Session) -> Session | None:
        if preferred.can_receive and preferred.sid in self.sessions:
            return preferred
        return next((s for s in self.sessions.values() if s.can_receive), None)

    def _send_receipt(self, receipt: Receipt, session: Session | None) -> None:
        if not self.controls.receipts:
            log.info("receipt for id %s withheld (receipts off)", receipt.message_id)
            return
        session = session or self._receiver_for(receipt.session)
        if session is None:
            if len(self.pending) >= PENDING_RECEIPTS_MAX:
                dropped = self.pending.popleft()
                log.warning("pending receipts full: receipt for id %s dropped", dropped.message_id)
            self.pending.append(receipt)
            log.info("receipt for id %s queued: no receiver bound (%d queued)", receipt.message_id, len(self.pending))
            return
        if session.send(self._receipt_pdu(receipt, session.next_sequence())):
            self.stats.receipts_sent += 1
            log.info("session %d: deliver_sm receipt id %s stat %s", session.sid, receipt.message_id, receipt.outcome)

    def _flush_pending(self, session: Session) -> None:
        count = len(self.pending)
        for _ in range(count):
            if not session.can_receive:
                break
            self._send_receipt(self.pending.popleft(), session)
        log.info("session %d: %d queued receipts handed over", session.sid, count - len(self.pending))

    @staticmethod
    def _receipt_pdu(receipt: Receipt, sequence: int) -> bytes:
        err, state = OUTCOMES[receipt.outcome]
        done = receipt.done_at or datetime.now(UTC)
        head = (f"id:{receipt.message_id} sub:001 dlvrd:{'001' if receipt.outcome == DELIVRD else '000'}"
                f" submit date:{receipt.submitted_at:%y%m%d%H%M} done date:{done:%y%m%d%H%M}"
                f" stat:{receipt.outcome} err:{err:03d} text:")
        body = ShortMessage(
            source_addr_ton=receipt.phone[0], source_addr_npi=receipt.phone[1], source_addr=receipt.phone[2],
            dest_addr_ton=receipt.esme[0], dest_addr_npi=receipt.esme[1], destination_addr=receipt.esme[2],
            esm_class=0x04, data_coding=0x00, short_message=encode_gsm(head + receipt.text),
            tlvs={Tag.RECEIPTED_MESSAGE_ID: receipt.message_id.encode() + b"\x00",
                  Tag.MESSAGE_STATE: bytes([state])},
        )
        return encode_pdu(Command.DELIVER_SM, sequence, encode_short_message(body))

    # --- control port ----------------------------------------------------------------------

    async def handle_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._control_connections >= MAX_CONTROL_CONNECTIONS:
            writer.close()
            return
        self._control_connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            for _ in range(CONTROL_LINES_PER_CONNECTION):
                try:
                    line = await reader.readline()
                except ValueError:  # longer than the stream limit
                    writer.write(b"error line too long\n")
                    break
                if not line:
                    break
                writer.write(self.control(line.decode("utf-8", "replace")).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._control_connections -= 1
            if task is not None:
                self._handlers.discard(task)
            writer.close()

    def control(self, line: str) -> str:
        """One control command to its one-line reply."""
        parts = line.split()
        command, args = (parts[0].lower(), parts[1:]) if parts else ("", [])
        c = self.controls
        if command in ("throttle", "drop-after"):
            if len(args) != 1 or not args[0].isdigit() or int(args[0]) > 10**9:
                return "error expected a count"
            if command == "throttle":
                c.throttle = int(args[0])
            else:
                c.drop_after = int(args[0])
        elif command in ("receipts", "fail-binds"):
            if len(args) != 1 or args[0].lower() not in ("on", "off"):
                return "error expected on or off"
            if command == "receipts":
                c.receipts = args[0].lower() == "on"
            else:
                c.fail_binds = args[0].lower() == "on"
        elif command in ("undeliverable", "unreachable"):
            if len(args) != 1 or len(args[0]) > 20:
                return "error expected one address"
            target = c.undeliverable if command == "undeliverable" else c.unreachable
            if len(target) >= MSISDN_SET_MAX:
                return "error too many addresses"
            target.add(args[0])
        elif command == "reset" and not args:
            self.controls = Controls()
        elif command == "stats" and not args:
            return json.dumps(asdict(self.stats))
        else:
            log.info("control: unknown command")
            return "error unknown command"
        log.info("control: %s", command)
        return "ok"

    # --- shutdown --------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Unbind and close every connection, forget the timers, let the handlers finish."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for s in list(self.sessions.values()):
            if s.mode is not None:
                s.send(encode_pdu(Command.UNBIND, s.next_sequence()))
            self._forget(s)
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=2.0)


# --- process entry ---------------------------------------------------------------------------


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def _delay(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected seconds") from None
    if not 0 <= seconds <= 3600:
        raise argparse.ArgumentTypeError("expected 0..3600 seconds")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsc-sim",
        description="An SMS centre speaking SMPP 3.4 on loopback, for tests and development. The password "
        f"comes from --password-file, else ${PASSWORD_ENV}, else '{DEFAULT_PASSWORD}'.")
    parser.add_argument("--listen", type=_host_port, default=("127.0.0.1", 2775), metavar="HOST:PORT",
                        help="SMPP address (default 127.0.0.1:2775; port 0 picks a free one)")
    parser.add_argument("--control", type=_host_port, default=("127.0.0.1", 0), metavar="HOST:PORT",
                        help="control port address (default 127.0.0.1:0)")
    parser.add_argument("--system-id", default="hallgate", help="the system_id ESMEs bind with (default hallgate)")
    parser.add_argument("--password-file", type=Path, metavar="PATH", help="file holding the bind password")
    parser.add_argument("--outbox", type=Path, required=True, metavar="PATH",
                        help="JSON Lines file of the messages the phones received")
    parser.add_argument("--receipt-delay", type=_delay, default=0.05, metavar="SECONDS",
                        help="delay before a delivery receipt (default 0.05)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                        help="stderr log level (default info)")
    parser.add_argument("--log-json", action="store_true",
                        help="log one JSON object per line (a gateway logging JSON passes it)")
    return parser


class JsonLines(logging.Formatter):
    """One JSON object per record, so a gateway whose log is JSON stays all JSON with its simulator."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"timestamp": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
                "level": record.levelname.lower(), "logger": "smsc_sim", "event": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def _password(path: Path | None) -> str:
    if path is not None:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    return os.environ.get(PASSWORD_ENV) or DEFAULT_PASSWORD


def _address(server: asyncio.Server) -> str:
    host, port = server.sockets[0].getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(config: Config) -> None:
    """Runs the SMSC until SIGTERM or SIGINT; prints the one "listening" line once both ports are up."""
    smsc = Smsc(config)
    smpp = await asyncio.start_server(smsc.handle_smpp, config.listen[0], config.listen[1])
    try:
        control = await asyncio.start_server(smsc.handle_control, config.control[0], config.control[1],
                                             limit=CONTROL_LINE_MAX)
    except OSError:
        smpp.close()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"smsc-sim listening smpp={_address(smpp)} control={_address(control)}", flush=True)
    log.info("system_id %s, receipt delay %.3fs, outbox ready", config.system_id, config.receipt_delay)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        smpp.close()
        control.close()
        await smsc.shutdown()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("stopped: %s", json.dumps(asdict(smsc.stats)))


def main(argv: list[str] | None = None) -> int:
    """`python -m adapters.smsc_sim ...`; 0 after SIGTERM/SIGINT, 2 for bad arguments, 1 if it cannot start."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has already printed
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s smsc-sim %(levelname)s %(message)s")
    if args.log_json:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonLines())
    try:
        password = _password(args.password_file)
    except OSError as exc:
        log.error("cannot read the password file: %s", exc.strerror)
        return 1
    if len(args.system_id.encode()) >= SYSTEM_ID_MAX or len(password.encode()) >= PASSWORD_MAX:
        log.warning("system_id is %d octets and the password %d; SMPP 3.4 allows 15 and 8, so ESMEs cannot bind",
                    len(args.system_id.encode()), len(password.encode()))
    config = Config(system_id=args.system_id, password=password, outbox=args.outbox,
                    receipt_delay=args.receipt_delay, listen=args.listen, control=args.control)
    try:
        asyncio.run(serve(config))
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
