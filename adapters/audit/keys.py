"""Where a chain lives in Redis and how its replies read: the one layout every audit module shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.domain import audit_chain as ac

KEY_PREFIX = "hg:audit"

# An outage, as opposed to a bug: redis-py's own errors (its ConnectionError and TimeoutError
# included) and socket errors that reach us raw (the builtin ConnectionError and TimeoutError are
# OSErrors). Callers turn these into DependencyUnavailable("audit") and let anything else propagate,
# so a bug in our own parsing ends INTERNAL and is logged instead of passing for a Redis outage.
OUTAGE: tuple[type[Exception], ...] = (RedisError, OSError)


@dataclass(frozen=True, slots=True)
class ChainKeys:
    """The keys of one chain. They share a Redis Cluster hash tag, so a chain lives on one shard and
    its Lua scripts may touch all of them; chains are partitions (e.g. one per hall), each
    verifiable on its own."""

    stream: str
    head: str
    checkpoint: str
    lease: str = ""  # whose turn it is after a conflict (fairness between gateway processes)

    @classmethod
    def of(cls, chain: str, prefix: str = KEY_PREFIX) -> ChainKeys:
        tag = "{" + ac.check_chain_name(chain) + "}"
        return cls(f"{prefix}:{tag}:stream", f"{prefix}:{tag}:head", f"{prefix}:{tag}:checkpoint",
                   f"{prefix}:{tag}:lease")


def stream_key(chain: str = "main") -> str:
    return ChainKeys.of(chain).stream


def text(v: Any) -> str:
    """Replies are bytes unless the client decodes them; the chain's logic works on str either way."""
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def seq_of(v: str | None) -> int | None:
    """A stored seq as a number; None where Redis holds anything else (edited by hand), which is
    malformed evidence for the verifier to name, not an error of ours."""
    return int(v) if v is not None and v.isascii() and v.isdigit() else None


def fields(raw: Mapping[Any, Any] | None) -> dict[str, str]:
    return {text(k): text(v) for k, v in (raw or {}).items()}


def entries(raw: Sequence[Any] | None) -> list[tuple[str, dict[str, str]]]:
    return [(text(i), fields(f)) for i, f in (raw or [])]


async def head_and_checkpoint(client: aioredis.Redis, k: ChainKeys) -> tuple[ac.Head | None, dict[str, str]]:
    """Both in one round trip, so a verification or trim starts from one consistent snapshot. A head
    whose seq is not a number counts as missing (the verifier then judges the stream by itself); the
    checkpoint is returned raw because only the verifier may decide whether it holds."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(k.head)
    pipe.hgetall(k.checkpoint)
    async with pipe:
        head_raw, cp_raw = await pipe.execute()
    h = fields(head_raw)
    seq = seq_of(h.get("seq"))
    head = ac.Head(seq, h.get("mac", ""), h.get("id", "")) if seq is not None else None
    return head, fields(cp_raw)


# ---------------------------------------------------------------------------------------------
# Indexes: one sorted set per (field, value) under the chain's hash tag, member = stream id, score =
# the id's milliseconds (stream time). Written by the append script together with the event, so a
# query by any of these fields reads only its matches. Keys are named by values the event already
# holds (the subscriber's keyed pseudonym, never a number).

# (index kind, event field). `subscriber_ref` may list several pseudonyms, comma-separated.
INDEXED: tuple[tuple[str, str], ...] = (
    ("sub", "subscriber_ref"), ("staff", "staff_id"), ("term", "terminal"), ("hall", "hall"), ("req", "call"))
INDEX_FIELD = dict(INDEXED)


def index_prefix(chain: str, prefix: str = KEY_PREFIX) -> str:
    return f"{prefix}:{{{ac.check_chain_name(chain)}}}:ix"


def index_state_key(chain: str) -> str:
    """Hash: `complete` = "1" once the indexes cover every event in the stream (a chain created by
    the indexing append script, or one `reindex` has finished); otherwise queries scan."""
    return index_prefix(chain) + ":state"


def index_cursor_key(chain: str) -> str:
    """Where a running `reindex` has got to (a stream id), so that it resumes after a crash."""
    return index_prefix(chain) + ":reindex"


def index_key(chain: str, kind: str, value: str) -> str:
    return f"{index_prefix(chain)}:{kind}:{value}"


def index_terms(event: Mapping[str, str]) -> list[tuple[str, str]]:
    """The (kind, value) pairs a stored event is indexed under: only fields it has, no duplicates."""
    out: list[tuple[str, str]] = []
    for kind, name in INDEXED:
        raw = event.get(name, "")
        values = raw.split(",") if kind == "sub" else [raw]
        for value in values:
            if value and (kind, value) not in out:
                out.append((kind, value))
    return out


def index_keys_of(chain: str, event: Mapping[str, str]) -> list[str]:
    return [index_key(chain, kind, value) for kind, value in index_terms(event)]
