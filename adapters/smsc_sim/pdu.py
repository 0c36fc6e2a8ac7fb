"""SMPP v3.4 PDU codec, written from the specification (Issue 1.2) with `struct` only.

A PDU is a 16-octet header (command_length, command_id, command_status, sequence_number, all
unsigned 32-bit big-endian) followed by a body of mandatory fields (integers, C-octet strings,
octet strings) and optional TLV parameters. Everything here is pure: bytes in, values out, and a
`PduError` carrying the command_status to answer with when the bytes do not parse.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum

HEADER = struct.Struct("!IIII")
HEADER_LENGTH = HEADER.size  # 16
MAX_PDU_LENGTH = 64 * 1024  # larger than any legal PDU (message_payload is at most 64 KiB of text)
RESPONSE_BIT = 0x80000000


class Command(IntEnum):
    """command_id values (SMPP 3.4 section 5.1.2.1)."""

    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


class Status(IntEnum):
    """command_status values used by the simulator (SMPP 3.4 section 5.1.3)."""

    ESME_ROK = 0x00
    ESME_RINVMSGLEN = 0x01
    ESME_RINVCMDLEN = 0x02
    ESME_RINVCMDID = 0x03
    ESME_RINVBNDSTS = 0x04
    ESME_RALYBND = 0x05
    ESME_RSYSERR = 0x08
    ESME_RINVSRCADR = 0x0A
    ESME_RINVDSTADR = 0x0B
    ESME_RBINDFAIL = 0x0D
    ESME_RINVPASWD = 0x0E
    ESME_RINVSYSID = 0x0F
    ESME_RMSGQFUL = 0x14
    ESME_RINVESMCLASS = 0x43
    ESME_RSUBMITFAIL = 0x45
    ESME_RTHROTTLED = 0x58
    ESME_RINVSCHED = 0x61
    ESME_RINVEXPIRY = 0x62
    ESME_RINVOPTPARSTREAM = 0xC0
    ESME_RINVOPTPARAMVAL = 0xC4


class Tag(IntEnum):
    """TLV tags the simulator reads or writes (SMPP 3.4 section 5.3.2)."""

    RECEIPTED_MESSAGE_ID = 0x001E
    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427


class MessageState(IntEnum):
    """message_state TLV values (SMPP 3.4 section 5.2.28)."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


BIND_COMMANDS = (Command.BIND_TRANSMITTER, Command.BIND_RECEIVER, Command.BIND_TRANSCEIVER)
INTERFACE_VERSION = 0x34

# Maximum sizes of C-octet strings, terminating NUL included (SMPP 3.4 section 4).
SYSTEM_ID_MAX = 16
PASSWORD_MAX = 9
SYSTEM_TYPE_MAX = 13
ADDRESS_RANGE_MAX = 41
SERVICE_TYPE_MAX = 6
ADDR_MAX = 21
TIME_MAX = 17
MESSAGE_ID_MAX = 65
SHORT_MESSAGE_MAX = 254


class PduError(Exception):
    """The PDU does not parse; answer generic_nack (or the command's resp) with `status`."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Header:
    length: int
    command_id: int
    status: int
    sequence: int

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)


def decode_header(data: bytes) -> Header:
    """The 16-octet header; the length is checked against the protocol's bounds."""
    if len(data) < HEADER_LENGTH:
        raise PduError(Status.ESME_RINVCMDLEN, "short header")
    header = Header(*HEADER.unpack_from(data, 0))
    if not HEADER_LENGTH <= header.length <= MAX_PDU_LENGTH:
        raise PduError(Status.ESME_RINVCMDLEN, "command_length out of bounds")
    return header


def encode_pdu(command_id: int, sequence: int, body: bytes = b"", status: int = 0) -> bytes:
    return HEADER.pack(HEADER_LENGTH + len(body), command_id, status, sequence) + body


def generic_nack(status: int, sequence: int = 0) -> bytes:
    return encode_pdu(Command.GENERIC_NACK, sequence, status=status)


def response_id(command_id: int) -> int:
    return command_id | RESPONSE_BIT


class BodyReader:
    """Reads a PDU body field by field; any overrun is a PduError (ESME_RINVCMDLEN)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0

    def remaining(self) -> int:
        return len(self.body) - self.pos

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.body):
            raise PduError(Status.ESME_RINVCMDLEN, "body truncated")
        chunk = self.body[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack("!H", self._take(2))[0]
        return value

    def octets(self, n: int) -> bytes:
        return self._take(n)

    def cstring(self, max_size: int) -> bytes:
        """A C-octet string of at most `max_size` octets including its NUL; returns it without NUL."""
        end = self.body.find(b"\x00", self.pos, self.pos + max_size)
        if end < 0:
            if self.body.find(b"\x00", self.pos) < 0:
                raise PduError(Status.ESME_RINVCMDLEN, "C-octet string not terminated")
            raise PduError(Status.ESME_RINVCMDLEN, "C-octet string too long")
        value = self.body[self.pos : end]
        self.pos = end + 1
        return value

    def tlvs(self) -> dict[int, bytes]:
        """The optional parameters to the end of the body (a repeated tag: the last wins)."""
        found: dict[int, bytes] = {}
        while self.remaining():
            if self.remaining() < 4:
                raise PduError(Status.ESME_RINVCMDLEN, "TLV header truncated")
            tag = self.u16()
            length = self.u16()
            found[tag] = self._take(length)
        return found


def cstr(value: bytes | str, max_size: int) -> bytes:
    raw = value.encode("ascii") if isinstance(value, str) else value
    if b"\x00" in raw or len(raw) + 1 > max_size:
        raise ValueError("C-octet string too long or contains NUL")
    return raw + b"\x00"


def tlv(tag: int, value: bytes) -> bytes:
    return struct.pack("!HH", tag, len(value)) + value


# --- bind_transmitter / bind_receiver / bind_transceiver (section 4.1) -----------------------


@dataclass(frozen=True)
class Bind:
    system_id: bytes
    password: bytes
    system_type: bytes
    interface_version: int
    addr_ton: int
    addr_npi: int
    address_range: bytes


def decode_bind(body: bytes) -> Bind:
    r = BodyReader(body)
    bind = Bind(
        system_id=r.cstring(SYSTEM_ID_MAX),
        password=r.cstring(PASSWORD_MAX),
        system_type=r.cstring(SYSTEM_TYPE_MAX),
        interface_version=r.u8(),
        addr_ton=r.u8(),
        addr_npi=r.u8(),
        address_range=r.cstring(ADDRESS_RANGE_MAX),
    )
    if r.remaining():
        raise PduError(Status.ESME_RINVCMDLEN, "trailing octets after bind body")
    return bind


def encode_bind(bind: Bind) -> bytes:
    return (
        cstr(bind.system_id, SYSTEM_ID_MAX)
        + cstr(bind.password, PASSWORD_MAX)
        + cstr(bind.system_type, SYSTEM_TYPE_MAX)
        + struct.pack("!BBB", bind.interface_version, bind.addr_ton, bind.addr_npi)
        + cstr(bind.address_range, ADDRESS_RANGE_MAX)
    )


def encode_bind_resp(system_id: str) -> bytes:
    """bind_*_resp body: the SMSC's system_id and the sc_interface_version TLV (3.4)."""
    return cstr(system_id, SYSTEM_ID_MAX) + tlv(Tag.SC_INTERFACE_VERSION, bytes([INTERFACE_VERSION]))


# --- submit_sm / deliver_sm (sections 4.4 and 4.6: the same layout) --------------------------


@dataclass(frozen=True)
class ShortMessage:
    """The body of a submit_sm or deliver_sm."""

    service_type: bytes = b""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: bytes = b""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: bytes = b""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: bytes = b""
    validity_period: bytes = b""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    tlvs: dict[int, bytes] = field(default_factory=dict)


def decode_short_message(body: bytes) -> ShortMessage:
    r = BodyReader(body)
    service_type = r.cstring(SERVICE_TYPE_MAX)
    source_ton, source_npi = r.u8(), r.u8()
    source = r.cstring(ADDR_MAX)
    dest_ton, dest_npi = r.u8(), r.u8()
    dest = r.cstring(ADDR_MAX)
    esm_class, protocol_id, priority = r.u8(), r.u8(), r.u8()
    schedule = r.cstring(TIME_MAX)
    validity = r.cstring(TIME_MAX)
    registered, replace, data_coding, default_msg_id = r.u8(), r.u8(), r.u8(), r.u8()
    sm_length = r.u8()
    short_message = r.octets(sm_length)
    tlvs = r.tlvs()
    return ShortMessage(service_type, source_ton, source_npi, source, dest_ton, dest_npi, dest,
                        esm_class, protocol_id, priority, schedule, validity, registered, replace,
                        data_coding, default_msg_id, short_message, tlvs)


def encode_short_message(sm: ShortMessage) -> bytes:
    if len(sm.short_message) > SHORT_MESSAGE_MAX:
        raise ValueError("short_message longer than 254 octets: use message_payload")
    return (
        cstr(sm.service_type, SERVICE_TYPE_MAX)
        + struct.pack("!BB", sm.source_addr_ton, sm.source_addr_npi)
        + cstr(sm.source_addr, ADDR_MAX)
        + struct.pack("!BB", sm.dest_addr_ton, sm.dest_addr_npi)
        + cstr(sm.destination_addr, ADDR_MAX)
        + struct.pack("!BBB", sm.esm_class, sm.protocol_id, sm.priority_flag)
        + cstr(sm.schedule_delivery_time, TIME_MAX)
        + cstr(sm.validity_period, TIME_MAX)
        + struct.pack("!BBBBB", sm.registered_delivery, sm.replace_if_present_flag, sm.data_coding,
                      sm.sm_default_msg_id, len(sm.short_message))
        + sm.short_message
        + b"".join(tlv(tag, value) for tag, value in sm.tlvs.items())
    )


def encode_message_id(message_id: str) -> bytes:
    """submit_sm_resp / deliver_sm_resp body."""
    return cstr(message_id, MESSAGE_ID_MAX)


def decode_message_id(body: bytes) -> str:
    r = BodyReader(body)
    return r.cstring(MESSAGE_ID_MAX).decode("ascii", "replace")


# --- time fields (section 7.1.1) -----------------------------------------------------------

_ABSOLUTE_RE = re.compile(rb"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d)(\d{2})([+-])")
_RELATIVE_RE = re.compile(rb"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d)(\d{2})R")


def parse_smpp_time(value: bytes, now: datetime) -> datetime | None:
    """An SMPP time field as an aware UTC datetime: absolute "YYMMDDhhmmsstnnp" (p '+'/'-' and nn
    quarter-hours ahead of/behind UTC) or relative "YYMMDDhhmmss000R" counted from `now` (a year is
    365 days, a month 30). An empty field is None. ValueError when it is neither format."""
    if not value:
        return None
    if m := _RELATIVE_RE.fullmatch(value):
        years, months, days, hours, minutes, seconds = (int(g) for g in m.groups()[:6])
        return now + timedelta(days=years * 365 + months * 30 + days, hours=hours, minutes=minutes,
                               seconds=seconds)
    if m := _ABSOLUTE_RE.fullmatch(value):
        yy, mo, dd, hh, mi, ss, tenths, quarters = (int(g) for g in m.groups()[:8])
        if quarters > 48:
            raise ValueError("UTC offset beyond 12 hours")
        local = datetime(2000 + yy, mo, dd, hh, mi, ss, tenths * 100_000, tzinfo=UTC)  # may raise
        offset = timedelta(minutes=15 * quarters)
        return local - offset if m.group(9) == b"+" else local + offset
    raise ValueError("not an SMPP time")


def format_absolute_time(when: datetime) -> bytes:
    """An absolute SMPP time in UTC ("...000+")."""
    utc = when.astimezone(UTC)
    return utc.strftime("%y%m%d%H%M%S").encode() + str(utc.microsecond // 100_000).encode() + b"00+"
