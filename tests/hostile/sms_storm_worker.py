"""One side of a two-process storm on the SMS queue (tests/hostile/test_sms_storms.py).

    python -m tests.hostile.sms_storm_worker '<json>'

The JSON names the Redis URL, the queue's key, the moment to start (epoch seconds, the same for
both processes) and what to fire all at once, in this process's own order: `send` (n notices of
one kind to each of a few numbers, under a daily cap) or `take` (take_folds by session for every
session given, and by due time `takers` times). Connections and scripts are made ready before the
start, so the storm is the atomic steps racing, not connection set-up. One JSON line goes to
stdout: when this process started firing and finished, and what it got. Bounded: the whole storm
must end within `limit` seconds, else the process exits with an error."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any

from adapters.redis_client import connect
from adapters.sms.events import NoEvents
from adapters.sms.queue import ENQUEUE, TAKE_FOLDS, RedisSmsQueue
from gateway.domain.ports import Sms, SmsKind
from gateway.domain.secretbox import SecretBox


class Capped(NoEvents):
    def __init__(self) -> None:
        self.count = 0

    def capped(self, kind: str) -> None:
        self.count += 1


async def storm(spec: dict[str, Any]) -> dict[str, Any]:
    key = spec["key"].encode()
    client = connect(spec["url"], 5.0)
    events = Capped()
    now = float(spec["now"])
    queue = RedisSmsQueue(client, SecretBox(key), key, events=events, clock=lambda: now)
    try:
        if spec["mode"] == "send":
            calls = spec["n"] * len(spec["numbers"])
        else:
            calls = len(spec["sessions"]) + spec["takers"]
        # As many pooled connections as calls at once, and the scripts loaded, before the start.
        await asyncio.gather(*(client.ping() for _ in range(calls)))
        for script in (ENQUEUE, TAKE_FOLDS):
            await client.script_load(script)
        late = time.time() > spec["start_at"]
        await asyncio.sleep(max(0.0, spec["start_at"] - time.time()))
        started = time.time()
        if spec["mode"] == "send":
            notices = [Sms(SmsKind(spec["kind"]), to, f"storm notice to {to}", now + 3600, spec["cap"])
                       for to in spec["numbers"] for _ in range(spec["n"])]
            random.Random(spec["seed"]).shuffle(notices)
            await asyncio.wait_for(asyncio.gather(*(queue.send(sms) for sms in notices)), spec["limit"])
            result: dict[str, Any] = {"capped": events.count}
        else:
            sessions = list(spec["sessions"])
            random.Random(spec["seed"]).shuffle(sessions)  # an order of our own, not a secret
            takers = [queue.take_folds(session=s) for s in sessions]
            takers += [queue.take_folds(due_by=spec["due_by"]) for _ in range(spec["takers"])]
            random.Random(spec["seed"] + 1).shuffle(takers)
            answers = await asyncio.wait_for(asyncio.gather(*takers), spec["limit"])
            result = {"folds": [[f.to, f.terminal, list(f.months)] for folds in answers for f in folds]}
        return {"late": late, "started": started, "finished": time.time(), **result}
    finally:
        await client.aclose()


def main() -> None:
    spec = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(storm(spec))), flush=True)


if __name__ == "__main__":
    main()
