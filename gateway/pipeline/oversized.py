"""Which fields make a request too large: the field paths an oversized request's BadRequest names.

A request over its method's size limit is still decoded when it is not absurdly large (gRPC's
own receive limit has already bounded it), so the caller learns *what* to shorten instead of
just "too large". The walk goes down the message by serialized size: at each level it names the
fewest fields (largest first) whose bytes account for the excess, plus any field that alone
takes a large share of the limit, and descends into the ones that are messages or repeated
fields. When the bulk is spread over many small entries it names the container; when most of it
lies in fields the method does not know (unknown fields), it names only the known fields that are
large by themselves, and when there are none the caller keeps the whole-message violation.

Pure: protobuf only, no gRPC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

MAX_NAMED = 8  # more fields than this to cover the excess: the bulk is spread thin, name the container
BIG_SHARE = 8  # a field holding more than 1/BIG_SHARE of the limit is named even when not needed to cover


@dataclass(frozen=True, slots=True)
class Part:
    """One piece of a message: a field, or an entry of a repeated field, with its encoded size."""

    path: str
    size: int
    value: Any
    field: FieldDescriptor | None  # set for a whole repeated field, whose children are its entries


def _varint_len(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def _tag_len(field: FieldDescriptor) -> int:
    return _varint_len(field.number << 3)


def _is_map(field: FieldDescriptor) -> bool:
    message = field.message_type
    return message is not None and message.GetOptions().map_entry


def _entry_size(field: FieldDescriptor, value: Any) -> int | None:
    """Encoded size of one value of `field` (tag and length included), or None when only the
    field as a whole can be measured (numbers, packed)."""
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        n = value.ByteSize()
    elif field.type == FieldDescriptor.TYPE_STRING:
        n = len(value.encode("utf-8", "surrogatepass"))
    elif field.type == FieldDescriptor.TYPE_BYTES:
        n = len(value)
    else:
        return None
    return _tag_len(field) + _varint_len(n) + n


def _whole_size(message: Message, field: FieldDescriptor, value: Any) -> int:
    """Encoded size of one field as a whole, by encoding a message holding only that field."""
    alone = type(message)()
    if field.is_repeated:
        getattr(alone, field.name).MergeFrom(value)
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        getattr(alone, field.name).CopyFrom(value)
    else:
        setattr(alone, field.name, value)
    return alone.ByteSize()


def parts(message: Message, prefix: str = "") -> list[Part]:
    """The set fields of `message` with their encoded sizes."""
    found = []
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.is_repeated and not _is_map(field) and field.type in (
                FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
            size = sum(_entry_size(field, v) or 0 for v in value)
            found.append(Part(path, size, value, field))
        else:
            single = None if field.is_repeated else _entry_size(field, value)
            found.append(Part(path, _whole_size(message, field, value) if single is None else single, value, None))
    return found


def _entries(part: Part) -> list[Part]:
    assert part.field is not None
    return [Part(f"{part.path}[{i}]", _entry_size(part.field, v) or 0, v, None) for i, v in enumerate(part.value)]


def _children(part: Part) -> list[Part] | None:
    if part.field is not None:
        return _entries(part)
    if isinstance(part.value, Message):
        return parts(part.value, f"{part.path}.")
    return None


def _shed(children: list[Part], need: int, big: int) -> list[Part] | None:
    """The parts to name so that at least `need` bytes are covered, plus those large by themselves;
    None when that would take more than MAX_NAMED of them (spread thin), or when the bytes are
    elsewhere (unknown fields) and no part is large by itself."""
    ordered = sorted(children, key=lambda p: p.size, reverse=True)
    picked, covered = [], 0
    for p in ordered:
        if covered >= need:
            break
        picked.append(p)
        covered += p.size
    if covered < need:  # much of it in unknown fields: name only what is large by itself
        return [p for p in ordered if p.size > big][:MAX_NAMED] or None
    if len(picked) > MAX_NAMED:
        return None
    picked += [p for p in ordered[len(picked):] if p.size > big][:MAX_NAMED - len(picked)]
    return picked


def _name(part: Part, need: int, big: int, depth: int) -> list[tuple[str, int]]:
    """The deepest paths inside `part` that account for `need` of its bytes, or `part` itself."""
    children = _children(part)
    if children and depth < 32:
        need = min(need, sum(c.size for c in children))
        picked = _shed(children, need, big)
        if picked:
            return _name_all(picked, need, big, depth + 1)
    return [(part.path, part.size)]


def _name_all(picked: list[Part], need: int, big: int, depth: int) -> list[tuple[str, int]]:
    """Name inside each picked part what it must shed beyond what the others cover."""
    covered = sum(p.size for p in picked)
    named: list[tuple[str, int]] = []
    for p in picked:
        named += _name(p, min(p.size, max(need - (covered - p.size), 1)), big, depth)
    return named


def large_fields(message: Message, limit: int) -> list[tuple[str, int]]:
    """(field path, encoded bytes) of the fields that make `message` larger than `limit` bytes,
    largest first; empty when they cannot be told (the excess lies in unknown fields)."""
    excess = message.ByteSize() - limit
    if excess <= 0:
        return []
    big = max(limit // BIG_SHARE, 1)
    picked = _shed(parts(message), excess, big)
    return _name_all(picked, excess, big, 0) if picked else []
