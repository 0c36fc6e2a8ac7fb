"""Ship an audit chain to a SIEM as JSON Lines: a consumer group follows the stream, each event
becomes one line `{"chain": ..., "id": ..., <stored fields incl. seq, prev, kid, mac>}` in a file or
on stdout, and the shipper resumes where it stopped after a restart.

Exactly once into a file, even across crashes:
  * a batch of lines is written, flushed and fsynced before its entries are XACKed;
  * on start the shipper reads the last complete line of the file (cutting off a torn last line)
    and a sidecar state file (`<out>.state`, updated after each fsynced batch), and skips every
    entry whose stream id is not beyond the newest one already written. An entry written but not
    acknowledged when the shipper died is acknowledged now, not written again;
  * before every read of new entries it re-reads its own pending entries (XREADGROUP id 0), so an
    entry delivered but not seen (a lost reply) is shipped in order, never after later ones.
On stdout only the state file can say what was written: lines are at least once there, and every
line carries (chain, id) as an idempotency key for the receiving side.

One shipper per (group, output): the consumer name must stay the same across restarts (its pending
entries are its own). Lines carry the seals, so the SIEM copy can be verified offline with
`gateway.domain.audit_chain.verify_entries`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError, ResponseError

from adapters.audit.keys import ChainKeys, text
from gateway.domain import audit_chain as ac
from gateway.domain.errors import DependencyUnavailable

log = structlog.get_logger("hallgate.audit.shipper")

TAIL_SEARCH_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ShipResult:
    shipped: int            # lines written by this run
    skipped: int            # entries found already written (a crash between write and ack), acked only
    last_id: str | None     # stream id of the newest line written so far (this run or before)


def _id(entry_id: str) -> tuple[int, int]:
    return ac.parse_stream_id(entry_id)


def _tail_lines(f: IO[bytes], size: int) -> Iterator[bytes]:
    """Complete lines of a file that ends with a newline, newest first."""
    pos, rest, read = size, b"", 0
    while pos > 0 and read < TAIL_SEARCH_BYTES:
        step = min(65536, pos)
        pos -= step
        read += step
        f.seek(pos)
        parts = (f.read(step) + rest).split(b"\n")
        rest = parts[0]
        yield from (p for p in reversed(parts[1:]) if p)
    if pos == 0 and rest:
        yield rest


def _recover_file(path: Path, chain: str) -> tuple[str | None, int | None]:
    """Cut a torn last line off the output and return (id, seq) of its newest line of `chain`."""
    if not path.exists():
        return None, None
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size and (f.seek(size - 1), f.read(1))[1] != b"\n":
            end = size
            while end > 0:
                step = min(65536, end)
                f.seek(end - step)
                chunk = f.read(step)
                cut = chunk.rfind(b"\n")
                if cut >= 0:
                    end = end - step + cut + 1
                    break
                end -= step
            log.warning("audit_ship_torn_line", path=str(path), dropped_bytes=size - end)
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
            size = end
        for line in _tail_lines(f, size):
            try:
                line_chain, entry_id, fields = ac.from_json_line(line.decode("utf-8"))
            except (ValueError, KeyError, UnicodeDecodeError):
                continue
            if line_chain == chain:
                seq = fields.get("seq", "")
                return entry_id, int(seq) if seq.isdigit() else None
    return None, None


def _read_state(path: Path | None, chain: str, group: str) -> str | None:
    if path is None or not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        log.warning("audit_ship_state_unreadable", path=str(path))
        return None
    if data.get("chain") != chain or data.get("group") != group:
        return None
    last = data.get("last_id")
    return str(last) if last else None


def _write_state(path: Path, chain: str, group: str, last_id: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump({"chain": chain, "group": group, "last_id": last_id}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Output:
    def __init__(self, out: Path | None, state: Path | None, chain: str, group: str) -> None:
        self.chain, self.group = chain, group
        self.state = state
        self.last_id: str | None = None
        self.last_seq: int | None = None
        if out is not None:
            out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.last_id, self.last_seq = _recover_file(out, chain)
            # Owner-only like every export: the trail names terminals, staff and pseudonyms.
            fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self.stream: IO[bytes] = os.fdopen(fd, "ab")  # closed by close()
            self.owned = True
        else:
            self.stream = sys.stdout.buffer
            self.owned = False
        from_state = _read_state(state, chain, group)
        if from_state is not None and (self.last_id is None or _id(from_state) > _id(self.last_id)):
            self.last_id = from_state  # the file was rotated away, or this is stdout
        try:
            self.fsync = stat.S_ISREG(os.fstat(self.stream.fileno()).st_mode)
        except (OSError, ValueError):  # no real file behind it (a pipe is fine, it has a fileno)
            self.fsync = False

    def shipped(self, entry_id: str) -> bool:
        return self.last_id is not None and _id(entry_id) <= _id(self.last_id)

    def write(self, lines: list[str], last_id: str) -> None:
        self.stream.write("".join(lines).encode("utf-8"))
        self.stream.flush()
        if self.fsync:  # pipes and terminals cannot be fsynced
            os.fsync(self.stream.fileno())
        self.last_id = last_id
        if self.state is not None:
            _write_state(self.state, self.chain, self.group, last_id)

    def close(self) -> None:
        if self.owned:
            self.stream.close()


async def ensure_group(client: aioredis.Redis, chain: str, group: str, start_id: str = "0") -> None:
    """Create the consumer group (and the stream) if missing; `start_id` "0" ships the whole
    retained chain, "$" only events appended from now on."""
    try:
        await client.xgroup_create(ChainKeys.of(chain).stream, group, id=start_id, mkstream=True)
    except ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


async def ship(client: aioredis.Redis, chain: str, group: str, consumer: str, out: Path | None = None, *,
               stop_after: int | None = None, follow: bool = True, stop: asyncio.Event | None = None,
               batch: int = 100, block_ms: int = 200, state: Path | None = None,
               start_id: str = "0") -> ShipResult:
    """Follow the chain through consumer group `group` as `consumer`, appending JSON Lines to `out`
    (None: stdout). Runs until `stop` is set, `stop_after` lines were written by this run, or (with
    `follow=False`) the stream holds nothing more. `state` defaults to `<out>.state` for a file;
    for stdout give one to make restarts skip what was already written. `block_ms` must stay below
    the client's socket timeout. Redis failures raise DependencyUnavailable("audit"); run it
    under a supervisor that restarts it, and it resumes exactly."""
    if state is None and out is not None:
        state = out.with_name(out.name + ".state")
    stream = ChainKeys.of(chain).stream
    output = _Output(out, state, chain, group)
    shipped = skipped = 0

    async def read(from_id: str, block: int | None) -> list[tuple[str, dict[str, str] | None]]:
        resp: Any = await client.xreadgroup(group, consumer, {stream: from_id}, count=batch, block=block)
        if not resp:
            return []
        if isinstance(resp, dict):  # RESP3: {stream: [entries]}
            value = next(iter(resp.values()))
            entries: Sequence[Any] = value[0] if value and isinstance(value[0], list) else value
        else:  # RESP2: [[stream, entries]]
            entries = resp[0][1]
        return [(text(i), {text(k): text(v) for k, v in f.items()} if f else None) for i, f in entries]

    async def deliver(entries: list[tuple[str, dict[str, str] | None]], limit: int | None) -> None:
        nonlocal shipped, skipped
        lines: list[str] = []
        handled: list[str] = []
        newest = None
        for entry_id, fields in entries:
            if limit is not None and len(lines) >= limit:
                break  # the rest stays pending and is shipped by the next run
            handled.append(entry_id)
            if not fields:  # deleted or trimmed while pending
                log.warning("audit_ship_entry_gone", id=entry_id)
            elif output.shipped(entry_id):
                skipped += 1
            else:
                seq = int(fields["seq"]) if fields.get("seq", "").isdigit() else None
                if output.last_seq is not None and seq is not None and seq != output.last_seq + 1:
                    log.warning("audit_ship_gap", chain=chain, expected=output.last_seq + 1, found=seq, id=entry_id)
                output.last_seq = seq
                lines.append(ac.to_json_line(ac.record(chain, entry_id, fields)))
                newest = entry_id
        if lines and newest is not None:
            output.write(lines, newest)  # on disk before anything is acknowledged
            shipped += len(lines)
        if handled:
            await client.xack(stream, group, *handled)

    try:
        await ensure_group(client, chain, group, start_id)
        while not (stop is not None and stop.is_set()):
            limit = None if stop_after is None else stop_after - shipped
            if limit is not None and limit <= 0:
                break
            pending = await read("0", None)
            if pending:
                await deliver(pending, limit)
                continue
            fresh = await read(">", block_ms if follow else None)
            if fresh:
                await deliver(fresh, limit)
            elif not follow:
                break
    except RedisError as e:
        raise DependencyUnavailable("audit") from e
    finally:
        with contextlib.suppress(OSError):
            output.close()
    return ShipResult(shipped, skipped, output.last_id)
