"""The SMSC simulator as a real process on a loopback port.

It is driven by a raw-socket SMPP client written here with `struct` (deliberately not reusing
adapters/smsc_sim/pdu.py, so a codec bug cannot agree with itself) and by aiosmpplib's ESME, the
client the gateway uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.sms_outbox import read_outbox

ROOT = Path(__file__).resolve().parents[2]
LISTENING_RE = re.compile(r"^smsc-sim listening smpp=127\.0\.0\.1:(\d+) control=127\.0\.0\.1:(\d+)$", re.M)
RECEIPT_RE = re.compile(r"id:(\S+) sub:(\d{3}) dlvrd:(\d{3}) submit date:(\d{10}) done date:(\d{10}) "
                        r"stat:(\w+) err:(\d{3}) text:(.*)", re.S)

BIND_RX, BIND_TX, BIND_TRX = 0x01, 0x02, 0x09
SUBMIT_SM, DELIVER_SM, UNBIND, ENQUIRE_LINK = 0x04, 0x05, 0x06, 0x15
RESP = GENERIC_NACK = 0x80000000
ROK, RINVCMDLEN, RINVCMDID, RINVBNDSTS, RALYBND = 0x00, 0x02, 0x03, 0x04, 0x05
RBINDFAIL, RINVPASWD, RINVSYSID, RTHROTTLED, RINVEXPIRY = 0x0D, 0x0E, 0x0F, 0x58, 0x62
RECEIPTED_MESSAGE_ID, MESSAGE_STATE, MESSAGE_PAYLOAD = 0x001E, 0x0427, 0x0424
SAR_REF, SAR_TOTAL, SAR_SEQ = 0x020C, 0x020E, 0x020F
PHONE, OTHER_PHONE = "13800000001", "13800000002"


# --- the simulator process -----------------------------------------------------------------


@dataclass
class Sim:
    proc: subprocess.Popen[bytes]
    smpp_port: int
    control_port: int
    outbox: Path
    stdout: Path
    stderr: Path

    async def control(self, line: str) -> str:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.control_port), 5)
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            return (await asyncio.wait_for(reader.readline(), 5)).decode().rstrip("\n")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def stats(self) -> dict[str, int]:
        result: dict[str, int] = json.loads(await self.control("stats"))
        return result

    def messages(self) -> list[dict[str, Any]]:
        return read_outbox(self.outbox)

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[Callable[..., Sim]]:
    """Factory: `start_sim("--receipt-delay", "0", env={...})` runs a simulator process; every one
    is killed by pid at teardown, and none may have printed a traceback."""
    sims: list[Sim] = []

    def start(*extra: str, env: dict[str, str] | None = None) -> Sim:
        n = len(sims)
        out, err, outbox = tmp_path / f"sim{n}.out", tmp_path / f"sim{n}.err", tmp_path / f"sim{n}" / "outbox.jsonl"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "adapters.smsc_sim", "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
                 "--outbox", str(outbox), *extra],
                cwd=ROOT, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})})
        sim = Sim(proc, 0, 0, outbox, out, err)
        sims.append(sim)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if m := LISTENING_RE.search(out.read_text(errors="replace")):
                sim.smpp_port, sim.control_port = int(m.group(1)), int(m.group(2))
                return sim
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"simulator did not start: {err.read_text(errors='replace')[-2000:]}")

    yield start
    for sim in sims:
        if sim.proc.poll() is None:
            os.kill(sim.proc.pid, signal.SIGKILL)
        sim.proc.wait(timeout=10)
    for sim in sims:
        assert "Traceback" not in sim.output()


@pytest.fixture
def sim(start_sim: Callable[..., Sim]) -> Sim:
    return start_sim()


# --- a raw SMPP client, struct-packed --------------------------------------------------------


def cstr(value: str | bytes) -> bytes:
    return (value.encode() if isinstance(value, str) else value) + b"\x00"


def tlv(tag: int, value: bytes) -> bytes:
    return struct.pack("!HH", tag, len(value)) + value


def pdu(command_id: int, seq: int, body: bytes = b"", status: int = 0) -> bytes:
    return struct.pack("!IIII", 16 + len(body), command_id, status, seq) + body


def bind_body(system_id: str = "hallgate", password: str = "sim-pass") -> bytes:  # noqa: S107
    return cstr(system_id) + cstr(password) + cstr("") + bytes([0x34, 0, 0]) + cstr("")


def submit_body(dest: str, message: bytes, *, source: str = "HALLGATE", esm_class: int = 0, data_coding: int = 0,
                registered_delivery: int = 1, validity: str = "", tlvs: bytes = b"") -> bytes:
    return (cstr("") + bytes([5, 0]) + cstr(source) + bytes([1, 1]) + cstr(dest) + bytes([esm_class, 0, 0])
            + cstr("") + cstr(validity) + bytes([registered_delivery, 0, data_coding, 0, len(message)]) + message
            + tlvs)


_GSM = {"@": 0x00, "£": 0x01, "$": 0x02, "é": 0x05, "\n": 0x0A, "Δ": 0x10, "_": 0x11, "¤": 0x24, "¡": 0x40,
        "ä": 0x7B, "ñ": 0x7D}
_GSM_EXT = {"^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65}


def gsm(text: str) -> bytes:
    """GSM 03.38 unpacked septets, written out by hand for the characters the tests use."""
    out = bytearray()
    for ch in text:
        if ch in _GSM_EXT:
            out += bytes([0x1B, _GSM_EXT[ch]])
        elif ch in _GSM:
            out.append(_GSM[ch])
        else:
            assert re.fullmatch(r"[A-Za-z0-9 !\"#%&'()*+,\-./:;<=>?]", ch), ch
            out.append(ord(ch))
    return bytes(out)


def ungsm(data: bytes) -> str:
    back = {v: k for k, v in _GSM.items()}
    back_ext = {v: k for k, v in _GSM_EXT.items()}
    out, escaped = [], False
    for octet in data:
        if escaped:
            out.append(back_ext[octet])
            escaped = False
        elif octet == 0x1B:
            escaped = True
        else:
            out.append(back.get(octet, chr(octet)))
    return "".join(out)


@dataclass
class Pdu:
    command_id: int
    status: int
    seq: int
    body: bytes


@dataclass
class Receipt:
    message_id: str
    stat: str
    err: str
    text: str
    esm_class: int
    data_coding: int
    source: str
    dest: str
    tlvs: dict[int, bytes]
    raw: str


def parse_sm(body: bytes) -> tuple[dict[str, Any], dict[int, bytes]]:
    fields: dict[str, Any] = {}
    pos = 0

    def c() -> bytes:
        nonlocal pos
        end = body.index(b"\x00", pos)
        value, pos = body[pos:end], end + 1
        return value

    def u8() -> int:
        nonlocal pos
        pos += 1
        return body[pos - 1]

    fields["service_type"] = c()
    u8(), u8()
    fields["source"] = c().decode()
    u8(), u8()
    fields["dest"] = c().decode()
    fields["esm_class"] = u8()
    u8(), u8()
    c(), c()
    u8(), u8()
    fields["data_coding"] = u8()
    u8()
    length = u8()
    fields["short_message"], pos = body[pos : pos + length], pos + length
    tlvs: dict[int, bytes] = {}
    while pos < len(body):
        tag, size = struct.unpack_from("!HH", body, pos)
        tlvs[tag], pos = body[pos + 4 : pos + 4 + size], pos + 4 + size
    return fields, tlvs


class Client:
    """One SMPP connection; deliver_sm that arrive while waiting for a response are kept for later."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.seq = 0
        self.delivered: list[Pdu] = []

    @classmethod
    async def open(cls, sim: Sim) -> Client:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", sim.smpp_port), 5)
        return cls(reader, writer)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()

    async def send(self, command_id: int, body: bytes = b"") -> int:
        self.seq += 1
        await self.send_raw(pdu(command_id, self.seq, body))
        return self.seq

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read(self, within: float = 5.0) -> Pdu | None:
        """The next PDU, or None when the server closed the connection."""
        try:
            head = await asyncio.wait_for(self.reader.readexactly(16), within)
            length, command_id, status, seq = struct.unpack("!IIII", head)
            body = await asyncio.wait_for(self.reader.readexactly(length - 16), within)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        return Pdu(command_id, status, seq, body)

    async def response(self, seq: int, within: float = 5.0) -> Pdu:
        while True:
            got = await self.read(within)
            assert got is not None, "connection closed while waiting for a response"
            if got.command_id == DELIVER_SM:
                self.delivered.append(got)
            elif got.seq == seq and got.command_id & RESP:
                return got

    async def request(self, command_id: int, body: bytes = b"") -> Pdu:
        return await self.response(await self.send(command_id, body))

    async def bind(self, command: int = BIND_TRX, **kwargs: str) -> int:
        resp = await self.request(command, bind_body(**kwargs))
        assert resp.command_id == command | RESP
        return resp.status

    async def submit(self, dest: str, message: bytes, **kwargs: Any) -> tuple[int, str]:
        resp = await self.request(SUBMIT_SM, submit_body(dest, message, **kwargs))
        assert resp.command_id == SUBMIT_SM | RESP
        return resp.status, resp.body.rstrip(b"\x00").decode()

    async def receipt(self, within: float = 5.0) -> Receipt:
        """The next delivery receipt; it is acknowledged with deliver_sm_resp."""
        while not self.delivered:
            got = await self.read(within)
            assert got is not None, "connection closed while waiting for a receipt"
            if got.command_id == DELIVER_SM:
                self.delivered.append(got)
        deliver = self.delivered.pop(0)
        await self.send_raw(pdu(DELIVER_SM | RESP, deliver.seq, cstr("")))
        fields, tlvs = parse_sm(deliver.body)
        raw = ungsm(fields["short_message"])
        m = RECEIPT_RE.fullmatch(raw)
        assert m, raw
        return Receipt(m.group(1), m.group(6), m.group(7), m.group(8), fields["esm_class"], fields["data_coding"],
                       fields["source"], fields["dest"], tlvs, raw)

    async def no_receipt(self, wait: float = 0.4) -> None:
        assert not self.delivered
        with contextlib.suppress(TimeoutError):
            got = await self.read(wait)
            assert got is None or got.command_id != DELIVER_SM, "unexpected deliver_sm"

    async def until_closed(self, within: float = 5.0) -> list[Pdu]:
        """Whatever the server still sends before it closes the connection (TimeoutError if it does not)."""
        got: list[Pdu] = []
        deadline = time.monotonic() + within
        while (next_pdu := await self.read(max(0.01, deadline - time.monotonic()))) is not None:
            got.append(next_pdu)
        return got

    async def is_closed(self, within: float = 5.0) -> bool:
        return [p for p in await self.until_closed(within) if p.command_id != DELIVER_SM] == []


async def bound(sim: Sim, command: int = BIND_TRX) -> Client:
    client = await Client.open(sim)
    assert await client.bind(command) == ROK
    return client


# --- the tests -------------------------------------------------------------------------------


async def test_bind_submit_receipt_and_outbox(sim: Sim) -> None:
    client = await bound(sim)
    status, message_id = await client.submit(PHONE, gsm("Your code is 482913"))
    assert status == ROK and re.fullmatch(r"[0-9a-f]{16}", message_id)

    receipt = await client.receipt()
    assert receipt.esm_class == 0x04 and receipt.data_coding == 0
    assert (receipt.message_id, receipt.stat, receipt.err, receipt.text) == (message_id, "DELIVRD", "000",
                                                                             "Your code is 482913")
    assert " sub:001 dlvrd:001 " in receipt.raw
    assert (receipt.source, receipt.dest) == (PHONE, "HALLGATE")
    assert receipt.tlvs[RECEIPTED_MESSAGE_ID] == message_id.encode() + b"\x00"
    assert receipt.tlvs[MESSAGE_STATE] == b"\x02"

    [line] = sim.messages()
    assert {k: line[k] for k in ("to", "from", "text", "ids", "segments", "data_coding")} == {
        "to": PHONE, "from": "HALLGATE", "text": "Your code is 482913", "ids": [message_id], "segments": 1,
        "data_coding": 0}
    assert datetime.fromisoformat(line["at"]).tzinfo is not None
    assert stat.S_IMODE(os.stat(sim.outbox).st_mode) == 0o600

    _, second = await client.submit(PHONE, gsm("again"), registered_delivery=0)
    assert second != message_id
    await client.no_receipt()
    stats = await sim.stats()
    assert stats == {"binds": 1, "bind_failures": 0, "connections": 1, "submits": 2, "accepted": 2, "throttled": 0,
                     "receipts_sent": 1, "enquire_links": 0, "dropped_connections": 0}
    await client.close()


async def test_wrong_credentials_are_refused_and_the_connection_closed(sim: Sim) -> None:
    for kwargs, expected in (({"password": "wrong"}, RINVPASWD), ({"system_id": "nobody"}, RINVSYSID)):
        client = await Client.open(sim)
        assert await client.bind(BIND_TRX, **kwargs) == expected
        assert await client.is_closed()
    assert (await sim.stats())["bind_failures"] == 2


async def test_password_from_file_or_environment(start_sim: Callable[..., Sim], tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("file-pw\n")
    from_file = start_sim("--password-file", str(tmp_path / "pw"), "--system-id", "esme1")
    from_env = start_sim(env={"HALLGATE_SMSC_SIM_PASSWORD": "env-pw"})
    for s, system_id, good in ((from_file, "esme1", "file-pw"), (from_env, "hallgate", "env-pw")):
        client = await Client.open(s)
        assert await client.bind(BIND_TRX, system_id=system_id, password="sim-pass") == RINVPASWD
        client = await Client.open(s)
        assert await client.bind(BIND_TRX, system_id=system_id, password=good) == ROK
        await client.close()
        assert good not in s.output()


async def test_fail_binds(sim: Sim) -> None:
    assert await sim.control("fail-binds on") == "ok"
    for command in (BIND_TRX, BIND_TX, BIND_RX):
        client = await Client.open(sim)
        assert await client.bind(command) == RBINDFAIL
        await client.close()
    assert await sim.control("fail-binds off") == "ok"
    client = await bound(sim)
    stats = await sim.stats()
    assert (stats["binds"], stats["bind_failures"]) == (1, 3)
    await client.close()


async def test_session_states(sim: Sim) -> None:
    client = await Client.open(sim)
    assert (await client.submit(PHONE, gsm("too early")))[0] == RINVBNDSTS
    assert await client.bind(BIND_TRX) == ROK
    assert await client.bind(BIND_TX) == RALYBND
    assert (await client.submit(PHONE, gsm("now")))[0] == ROK  # still bound and serving
    receiver = await bound(sim, BIND_RX)
    assert (await receiver.submit(PHONE, gsm("receivers do not submit")))[0] == RINVBNDSTS
    resp = await client.request(UNBIND)
    assert resp.command_id == UNBIND | RESP and resp.status == ROK
    assert await client.is_closed()
    assert [m["text"] for m in sim.messages()] == ["now"]
    await receiver.close()


async def test_enquire_link(sim: Sim) -> None:
    client = await Client.open(sim)
    resp = await client.request(ENQUIRE_LINK)
    assert (resp.command_id, resp.status, resp.body) == (ENQUIRE_LINK | RESP, ROK, b"")
    assert await client.bind() == ROK
    resp = await client.request(ENQUIRE_LINK)
    assert resp.command_id == ENQUIRE_LINK | RESP
    # The client's own answers are taken silently.
    await client.send_raw(pdu(ENQUIRE_LINK | RESP, 77) + pdu(DELIVER_SM | RESP, 78, cstr("")))
    assert (await client.request(ENQUIRE_LINK)).command_id == ENQUIRE_LINK | RESP
    assert (await sim.stats())["enquire_links"] == 3
    await client.close()


async def test_throttle(sim: Sim) -> None:
    client = await bound(sim)
    assert await sim.control("throttle 2") == "ok"
    assert [(await client.submit(PHONE, gsm(f"try {i}")))[0] for i in range(3)] == [RTHROTTLED, RTHROTTLED, ROK]
    assert [m["text"] for m in sim.messages()] == ["try 2"]
    stats = await sim.stats()
    assert (stats["submits"], stats["throttled"], stats["accepted"]) == (3, 2, 1)
    await client.close()


async def test_drop_after_closes_every_connection_without_answering(sim: Sim) -> None:
    first, second = await bound(sim), await bound(sim)
    assert await sim.control("drop-after 1") == "ok"
    assert (await first.submit(PHONE, gsm("kept")))[0] == ROK
    await first.send(SUBMIT_SM, submit_body(PHONE, gsm("lost in the crash")))
    assert [p for p in await first.until_closed() if p.command_id != DELIVER_SM] == []  # never answered
    assert await second.is_closed()
    assert [m["text"] for m in sim.messages()] == ["kept"]
    stats = await sim.stats()
    assert (stats["dropped_connections"], stats["connections"], stats["accepted"]) == (2, 0, 1)

    again = await bound(sim)  # the SMSC is back, and the crash was one-shot
    assert (await again.submit(PHONE, gsm("after")))[0] == ROK
    assert (await again.submit(PHONE, gsm("after 2")))[0] == ROK
    assert [m["text"] for m in sim.messages()] == ["kept", "after", "after 2"]
    await again.close()


async def test_receipts_off_withholds_them(sim: Sim) -> None:
    client = await bound(sim)
    assert await sim.control("receipts off") == "ok"
    _, withheld = await client.submit(PHONE, gsm("quiet"))
    await client.no_receipt()
    assert await sim.control("receipts on") == "ok"
    _, loud = await client.submit(PHONE, gsm("loud"))
    assert (await client.receipt()).message_id == loud  # the withheld one was dropped, not queued
    await client.no_receipt()
    assert [m["text"] for m in sim.messages()] == ["quiet", "loud"]
    assert withheld != loud
    await client.close()


async def test_undeliverable_number(sim: Sim) -> None:
    client = await bound(sim)
    assert await sim.control(f"undeliverable {OTHER_PHONE}") == "ok"
    _, lost = await client.submit(OTHER_PHONE, gsm("never arrives"))
    receipt = await client.receipt()
    assert (receipt.message_id, receipt.stat, receipt.err) == (lost, "UNDELIV", "001")
    assert receipt.tlvs[MESSAGE_STATE] == b"\x05"
    await client.submit(PHONE, gsm("arrives"))
    assert (await client.receipt()).stat == "DELIVRD"
    assert [(m["to"], m["text"]) for m in sim.messages()] == [(PHONE, "arrives")]
    assert await sim.control("reset") == "ok"
    await client.submit(OTHER_PHONE, gsm("after reset"))
    assert (await client.receipt()).stat == "DELIVRD"
    assert sim.messages()[-1]["to"] == OTHER_PHONE
    await client.close()


async def test_unreachable_number_expires_at_its_validity(sim: Sim) -> None:
    client = await bound(sim)
    assert await sim.control(f"unreachable {OTHER_PHONE}") == "ok"
    started = time.monotonic()
    _, held = await client.submit(OTHER_PHONE, gsm("held"), validity="000000000001000R")  # one second
    receipt = await client.receipt(within=5)
    assert time.monotonic() - started >= 0.8
    assert (receipt.message_id, receipt.stat, receipt.err) == (held, "EXPIRED", "000")
    assert receipt.tlvs[MESSAGE_STATE] == b"\x03"
    assert " dlvrd:000 " in receipt.raw
    assert sim.messages() == []
    await client.close()


async def test_validity_period(sim: Sim) -> None:
    client = await bound(sim)
    assert (await client.submit(PHONE, gsm("stale"), validity="200101000000000+"))[0] == RINVEXPIRY
    assert (await client.submit(PHONE, gsm("stale rel"), validity="000000000000000R"))[0] == RINVEXPIRY
    assert (await client.submit(PHONE, gsm("garbled"), validity="tomorrow"))[0] == RINVEXPIRY
    # Local time 8 hours behind UTC ("32-"), one hour from now: valid.
    local = datetime.now(UTC) - timedelta(hours=8) + timedelta(hours=1)
    assert (await client.submit(PHONE, gsm("abs"), validity=local.strftime("%y%m%d%H%M%S") + "032-"))[0] == ROK
    # The same wall-clock time read as 8 hours *ahead* of UTC is 15 hours ago: expired.
    assert (await client.submit(PHONE, gsm("abs+"), validity=local.strftime("%y%m%d%H%M%S") + "032+"))[0] == RINVEXPIRY
    assert (await client.submit(PHONE, gsm("rel"), validity="000001000000000R"))[0] == ROK
    assert [m["text"] for m in sim.messages()] == ["abs", "rel"]
    stats = await sim.stats()
    assert (stats["submits"], stats["accepted"]) == (6, 2)
    await client.close()


async def test_malformed_pdus_get_generic_nack_and_the_server_keeps_serving(sim: Sim) -> None:
    other = await bound(sim)

    client = await bound(sim)
    truncated = pdu(SUBMIT_SM, 41, cstr("") + bytes([5, 0]) + b"HALLGATE")  # C-string never ends
    await client.send_raw(truncated)
    nack = await client.response(41)
    assert (nack.command_id, nack.status) == (GENERIC_NACK, RINVCMDLEN)
    await client.send_raw(pdu(0x00000099, 42))
    nack = await client.response(42)
    assert (nack.command_id, nack.status) == (GENERIC_NACK, RINVCMDID)
    await client.send_raw(pdu(0x00000003, 43))  # query_sm: not offered
    assert (await client.response(43)).status == RINVCMDID
    # UDHI set, but the user data does not begin with a User Data Header: refused, not misread.
    assert (await client.submit(PHONE, "好的".encode("utf-16-be"), esm_class=0x40, data_coding=8))[0] == 0x01
    assert (await client.request(ENQUIRE_LINK)).command_id == ENQUIRE_LINK | RESP  # same connection still served

    for bogus in (struct.pack("!IIII", 8, SUBMIT_SM, 0, 44), struct.pack("!IIII", 70_000, SUBMIT_SM, 0, 45),
                  b"\xff" * 32):
        bad = await Client.open(sim)
        await bad.send_raw(bogus)
        first = await bad.read()
        assert first is not None and (first.command_id, first.status) == (GENERIC_NACK, RINVCMDLEN)
        assert await bad.is_closed()

    assert (await other.submit(PHONE, gsm("still here")))[0] == ROK
    assert (await other.receipt()).stat == "DELIVRD"
    assert [m["text"] for m in sim.messages()] == ["still here"]
    await other.close()
    await client.close()


async def test_gsm_default_alphabet_with_escapes(sim: Sim) -> None:
    client = await bound(sim)
    text = "Code {7}: [ok] ~^|\\ 5€ @£$_ éΔäñ¡"
    encoded = gsm(text)
    assert encoded.count(0x1B) == 9
    await client.submit(PHONE, encoded)
    assert sim.messages()[0]["text"] == text
    receipt = await client.receipt()
    assert receipt.text == text[:20]  # quoted in the receipt, as septets too
    await client.close()


def _udh8(ref: int, total: int, seq: int) -> bytes:
    return bytes([5, 0x00, 3, ref, total, seq])


def _udh16(ref: int, total: int, seq: int) -> bytes:
    return bytes([6, 0x08, 4, ref >> 8, ref & 0xFF, total, seq])


def _sar(ref: int, total: int, seq: int) -> bytes:
    return tlv(SAR_REF, struct.pack("!H", ref)) + tlv(SAR_TOTAL, bytes([total])) + tlv(SAR_SEQ, bytes([seq]))


@pytest.mark.parametrize("kind", ["udh8-gsm", "udh16-ucs2-split-surrogate", "sar-latin1-out-of-order"])
async def test_concatenated_messages(sim: Sim, kind: str) -> None:
    client = await bound(sim)
    pieces: list[tuple[bytes, dict[str, Any]]]
    if kind == "udh8-gsm":
        text, dc = "Part one of a [long] message, " * 3 + "and the end.", 0x00
        raw = gsm(text)
        parts = [raw[:60], raw[60:]]
        pieces = [(_udh8(200, 2, i + 1) + p, {"esm_class": 0x40}) for i, p in enumerate(parts)]
    elif kind == "udh16-ucs2-split-surrogate":
        text, dc = "Привет \U0001f600 мир, это длинное сообщение.", 0x08
        raw = text.encode("utf-16-be")
        cut = raw.index("\U0001f600".encode("utf-16-be")) + 2  # between the two surrogates
        parts = [raw[:cut], raw[cut:]]
        pieces = [(_udh16(0x1234, 2, i + 1) + p, {"esm_class": 0x40}) for i, p in enumerate(parts)]
    else:
        text, dc = "Grüße aus Köln, schöne Zeit!", 0x03
        raw = text.encode("latin-1")
        parts = [raw[:10], raw[10:20], raw[20:]]
        pieces = [(p, {"tlvs": _sar(7, 3, i + 1)}) for i, p in enumerate(parts)]
        pieces = [pieces[1], pieces[0], pieces[2]]
    ids = []
    for message, kwargs in pieces:
        status, message_id = await client.submit(PHONE, message, data_coding=dc, **kwargs)
        assert status == ROK
        ids.append(message_id)
    [line] = sim.messages()
    assert (line["text"], line["segments"], line["data_coding"]) == (text, len(parts), dc)
    if kind.startswith("sar"):
        ids = [ids[1], ids[0], ids[2]]  # listed in segment order
    assert line["ids"] == ids and len(set(ids)) == len(ids)
    receipts = [await client.receipt() for _ in parts]  # one per segment, as real SMSCs do
    assert sorted(r.message_id for r in receipts) == sorted(ids)
    assert {r.stat for r in receipts} == {"DELIVRD"}
    await client.close()


async def test_message_payload_tlv(sim: Sim) -> None:
    client = await bound(sim)
    text = "长消息" * 60  # 360 octets of UCS2: too long for short_message
    status, _ = await client.submit(PHONE, b"", data_coding=0x08,
                                    tlvs=tlv(MESSAGE_PAYLOAD, text.encode("utf-16-be")))
    assert status == ROK
    assert sim.messages()[0]["text"] == text
    await client.close()


async def test_receipts_go_to_a_receiver_and_wait_for_one(sim: Sim) -> None:
    transmitter = await bound(sim, BIND_TX)
    _, first = await transmitter.submit(PHONE, gsm("one"))
    await asyncio.sleep(0.3)  # the receipt is due, but nobody can receive it: it is kept
    receiver = await bound(sim, BIND_RX)
    assert (await receiver.receipt()).message_id == first
    _, second = await transmitter.submit(PHONE, gsm("two"))
    assert (await receiver.receipt()).message_id == second
    await transmitter.no_receipt()
    assert (await sim.stats())["receipts_sent"] == 2
    await transmitter.close()
    await receiver.close()


async def test_control_protocol(sim: Sim) -> None:
    assert await sim.control("launch missiles") == "error unknown command"
    assert (await sim.control("throttle many")).startswith("error")
    assert (await sim.control("receipts maybe")).startswith("error")
    assert set(await sim.stats()) == {"binds", "bind_failures", "connections", "submits", "accepted", "throttled",
                                      "receipts_sent", "enquire_links", "dropped_connections"}
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.control_port)
    writer.write(b"throttle 1\nreset\nstats\n")
    replies = [(await asyncio.wait_for(reader.readline(), 5)).decode().strip() for _ in range(3)]
    assert replies[:2] == ["ok", "ok"] and json.loads(replies[2])["throttled"] == 0
    writer.close()
    client = await bound(sim)
    assert (await client.submit(PHONE, gsm("reset cleared the throttle")))[0] == ROK
    await client.close()


async def test_no_text_in_output_and_sigterm_exits_zero(sim: Sim) -> None:
    client = await bound(sim)
    secrets_sent = ["Secret code 918273", "Geheimnis 55501"]
    await sim.control(f"undeliverable {OTHER_PHONE}")
    await client.submit(PHONE, gsm(secrets_sent[0]))
    await client.submit(OTHER_PHONE, gsm(secrets_sent[1]))
    await client.submit(PHONE, "机密".encode("utf-16-be"), data_coding=0x08)
    await client.receipt()
    await client.receipt()
    await client.receipt()
    sim.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(sim.proc.wait, 10) == 0
    out = sim.output()
    assert "smsc-sim listening" in out and "deliver_sm receipt" in out
    for secret in [*secrets_sent, "机密", "sim-pass", PHONE, OTHER_PHONE]:
        assert secret not in out
    assert sim.stdout.read_text().count("\n") == 1


@dataclass
class _Hook:
    receipts: list[Any] = field(default_factory=list)
    deliver_pdus: int = 0
    errors: list[Exception] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


async def test_aiosmpplib_esme_long_chinese_text(sim: Sim) -> None:
    from aiosmpplib import ESME, AbstractHook, DeliverSm, PhoneNumber, SmppMessage, SubmitSm, SubmitSmResp

    seen = _Hook()

    class Hook(AbstractHook):
        async def sending(self, smpp_message: SmppMessage, pdu: bytes, client_id: str) -> None:
            return None

        async def received(self, smpp_message: SmppMessage | None, pdu: bytes, client_id: str) -> None:
            if struct.unpack_from("!I", pdu, 4)[0] == DELIVER_SM:
                seen.deliver_pdus += 1
            if isinstance(smpp_message, DeliverSm) and smpp_message.is_receipt():
                seen.receipts.append(smpp_message)
                seen.arrived.set()
            if isinstance(smpp_message, SubmitSmResp) and smpp_message.command_status.value != 0:
                seen.errors.append(RuntimeError(f"submit_sm_resp {smpp_message.command_status.name}"))
                seen.arrived.set()

        async def send_error(self, smpp_message: SmppMessage, error: Exception, client_id: str) -> None:
            seen.errors.append(error)
            seen.arrived.set()

    esme = ESME(smsc_host="127.0.0.1", smsc_port=sim.smpp_port, system_id="hallgate", password="sim-pass",
                hook=Hook(), log_level="WARNING", socket_timeout=5.0)
    task = asyncio.create_task(esme.start())
    text = ("您好，您的一次性验证码是九一八二七三。五分钟内有效，请勿将验证码告诉任何人。"  # noqa: RUF001
            "营业厅工作人员不会向您索要验证码。") * 2
    assert len(text.encode("utf-16-be")) > 140
    try:
        # auto_message_payload=False: otherwise aiosmpplib 0.7.4 does not split at all and sends the
        # whole text in one short_message with the UDHI bit set but no UDH (the simulator refuses that).
        await esme.broker.enqueue(SubmitSm(short_message=text, source=PhoneNumber("HALLGATE"),
                                           destination=PhoneNumber(PHONE), esm_class=0b01000000,
                                           auto_message_payload=False, log_id="t1"))
        await asyncio.wait_for(seen.arrived.wait(), 10)
        assert not seen.errors
        assert seen.receipts, "no delivery receipt reached the ESME's hook"
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(esme.stop(), 5)
        task.cancel()
        with contextlib.suppress(BaseException):
            await task

    [line] = sim.messages()
    assert line["text"] == text and line["to"] == PHONE and line["data_coding"] == 0x08
    assert line["segments"] >= 2 and len(line["ids"]) == line["segments"]
    assert seen.deliver_pdus == line["segments"]  # a receipt per segment
    assert seen.receipts[-1].parse_receipt()["id"] in line["ids"]
    assert seen.receipts[-1].log_id == "t1"  # the ESME correlated it to its submit
    assert text[:5] not in sim.output()


async def test_log_json_writes_one_json_object_per_stderr_line(start_sim: Callable[..., Sim]) -> None:
    """A gateway logging JSON starts its simulator with --log-json: their shared stderr stays all JSON,
    a refused bind's warning and the shutdown lines included."""
    sim = start_sim("--log-json")
    client = await Client.open(sim)
    assert await client.bind(BIND_TRX, password="wrong") == RINVPASWD
    assert await client.is_closed()
    sim.proc.send_signal(signal.SIGTERM)
    assert sim.proc.wait(timeout=10) == 0
    lines = sim.stderr.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert any(r["event"].startswith("stopped") for r in records), lines
    assert all({"timestamp", "level", "event"} <= set(r) for r in records)
