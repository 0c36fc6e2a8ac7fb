"""What the phone shows: short_message octets to text by data_coding, and concatenated messages.

data_coding (SMPP 3.4 section 5.2.19):
  0x00  SMSC default alphabet, which for this SMSC is the GSM 03.38 default alphabet, unpacked:
        one septet per octet, 0x1B escaping into the basic extension table (^ { } \\ [ ~ ] | € FF).
  0x01  IA5 (CCITT T.50) / ASCII.
  0x03  Latin-1 (ISO-8859-1).
  0x08  UCS2, read as UTF-16BE so that surrogate pairs (emoji) survive.
  0x02 / 0x04 octets, 0x06 Cyrillic, 0x07 Latin/Hebrew, and the GSM DCS group 0xF0-0xF7 are also
  understood; anything else is read as Latin-1 so that no octet is lost.

Concatenation: a User Data Header (esm_class bit 0x40) with IEI 0x00 (8-bit reference) or 0x08
(16-bit reference), or the SAR TLVs sar_msg_ref_num / sar_total_segments / sar_segment_seqnum.
The text may come in the message_payload TLV instead of short_message.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.smsc_sim.pdu import PduError, ShortMessage, Status, Tag

UDHI = 0x40  # esm_class: the short message begins with a User Data Header
IEI_CONCAT_8 = 0x00
IEI_CONCAT_16 = 0x08

# GSM 03.38 default alphabet, septet value = index. 0x1B is the escape to the extension table.
GSM_BASIC = (
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1b\u00c6\u00e6\u00df\u00c9"
    " !\"#\u00a4%&'()*+,-./0123456789:;<=>?"
    "\u00a1ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
    "\u00bfabcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0"
)
if len(GSM_BASIC) != 128:  # a table typo must fail at import, not garble texts
    raise RuntimeError("GSM 03.38 table is not 128 characters")
GSM_ESCAPE = 0x1B
GSM_EXTENSION = {0x0A: "\x0c", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~",
                 0x3E: "]", 0x40: "|", 0x65: "\u20ac"}
_GSM_ENCODE = {ch: bytes([i]) for i, ch in enumerate(GSM_BASIC) if i != GSM_ESCAPE}
_GSM_ENCODE.update({ch: bytes([GSM_ESCAPE, i]) for i, ch in GSM_EXTENSION.items()})

_CHARSETS = {0x01: "ascii", 0x02: "latin-1", 0x03: "latin-1", 0x04: "latin-1", 0x06: "iso8859-5",
             0x07: "iso8859-8"}


def decode_gsm(data: bytes) -> str:
    """Unpacked GSM 03.38 septets to text. An octet above 0x7F is not a septet (U+FFFD); an escape
    before a code the extension table lacks shows that code's basic character (3GPP TS 23.038)."""
    out: list[str] = []
    i = 0
    while i < len(data):
        octet = data[i]
        i += 1
        if octet > 0x7F:
            out.append("\ufffd")
        elif octet == GSM_ESCAPE:
            if i >= len(data):
                out.append(" ")
                break
            nxt = data[i]
            i += 1
            if nxt in GSM_EXTENSION:
                out.append(GSM_EXTENSION[nxt])
            elif nxt > 0x7F:
                out.append("\ufffd")
            elif nxt == GSM_ESCAPE:
                out.append(" ")
            else:
                out.append(GSM_BASIC[nxt])
        else:
            out.append(GSM_BASIC[octet])
    return "".join(out)


def encode_gsm(text: str, replacement: str = "?") -> bytes:
    """Text to unpacked GSM 03.38 septets; characters outside the alphabet become `replacement`."""
    fallback = _GSM_ENCODE[replacement]
    return b"".join(_GSM_ENCODE.get(ch, fallback) for ch in text)


def decode_text(data_coding: int, data: bytes) -> str:
    """short_message / message_payload octets (User Data Header removed) to text."""
    if data_coding == 0x00 or 0xF0 <= data_coding <= 0xF3:
        return decode_gsm(data)
    if data_coding == 0x08:
        return data.decode("utf-16-be", "replace")
    if 0xF4 <= data_coding <= 0xF7:
        return data.decode("latin-1")
    return data.decode(_CHARSETS.get(data_coding, "latin-1"), "replace")


@dataclass(frozen=True)
class Concat:
    """One segment's place in a concatenated message: which reference space, reference, total, seq."""

    kind: str  # "udh8", "udh16" or "sar"
    ref: int
    total: int
    seq: int


@dataclass(frozen=True)
class UserData:
    """The text octets of one submit_sm and, when it is a segment, where it belongs."""

    data_coding: int
    payload: bytes
    concat: Concat | None


def split_udh(data: bytes) -> tuple[Concat | None, bytes]:
    """A User Data Header off the front of `data`: the concatenation element if any, and the rest.
    Other information elements (port addressing, ...) are skipped."""
    if not data:
        raise PduError(Status.ESME_RINVMSGLEN, "UDHI set on empty user data")
    udhl = data[0]
    if 1 + udhl > len(data):
        raise PduError(Status.ESME_RINVMSGLEN, "UDH longer than the user data")
    udh, rest = data[1 : 1 + udhl], data[1 + udhl :]
    concat: Concat | None = None
    i = 0
    while i < len(udh):
        if i + 2 > len(udh):
            raise PduError(Status.ESME_RINVMSGLEN, "UDH information element truncated")
        iei, iel = udh[i], udh[i + 1]
        value = udh[i + 2 : i + 2 + iel]
        if len(value) != iel:
            raise PduError(Status.ESME_RINVMSGLEN, "UDH information element truncated")
        if iei == IEI_CONCAT_8 and iel == 3:
            concat = Concat("udh8", value[0], value[1], value[2])
        elif iei == IEI_CONCAT_16 and iel == 4:
            concat = Concat("udh16", (value[0] << 8) | value[1], value[2], value[3])
        i += 2 + iel
    return concat, rest


def _sar(tlvs: dict[int, bytes]) -> Concat | None:
    ref, total, seq = (tlvs.get(t) for t in (Tag.SAR_MSG_REF_NUM, Tag.SAR_TOTAL_SEGMENTS, Tag.SAR_SEGMENT_SEQNUM))
    if ref is None or total is None or seq is None:
        return None
    if len(ref) != 2 or len(total) != 1 or len(seq) != 1:
        raise PduError(Status.ESME_RINVOPTPARAMVAL, "SAR parameter of the wrong length")
    return Concat("sar", (ref[0] << 8) | ref[1], total[0], seq[0])


def user_data(sm: ShortMessage) -> UserData:
    """The text octets of a submit_sm: short_message or message_payload, its UDH or SAR TLVs
    read. A segment numbered outside 1..total is, as 3GPP TS 23.040 says, not a segment."""
    payload_tlv = sm.tlvs.get(Tag.MESSAGE_PAYLOAD)
    if payload_tlv is not None and sm.short_message:
        raise PduError(Status.ESME_RINVMSGLEN, "both short_message and message_payload")
    data = payload_tlv if payload_tlv is not None else sm.short_message
    concat: Concat | None
    if sm.esm_class & UDHI:
        concat, data = split_udh(data)
    else:
        concat = _sar(sm.tlvs)
    if concat is not None and not (concat.total > 1 and 1 <= concat.seq <= concat.total):
        concat = None
    return UserData(sm.data_coding, data, concat)
