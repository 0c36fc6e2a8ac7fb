"""Highly available Redis topologies on loopback for the tests: a 3-master Redis Cluster and a
Sentinel setup (1 master, 1 replica or more, 3 sentinels), started from Debian's redis-server and
redis-sentinel in temporary directories, with bounded waits, and stopped by pid.

Data nodes run with appendonly yes and appendfsync always (what the audit chain's strict
durability asks of Redis < 7.2). The fixtures `redis_cluster` and `redis_sentinel` (tests/e2e/conftest.py)
run them.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.cluster import key_slot

from tests.support.waiting import wait_until

HOST = "127.0.0.1"
SERVICE = "hallgate"
CLUSTER_NODE_TIMEOUT_MS = 1000
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
DATA_NODE_ARGS = ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (all bound at once, so none repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind((HOST, 0))
        return [int(s.getsockname()[1]) for s in socks]


class ServerProcess:
    """One redis-server or redis-sentinel child on a loopback port. `stop` is SIGTERM then SIGKILL,
    `kill` SIGKILL (a crash); `start` again reuses the same port, directory and configuration."""

    def __init__(self, name: str, directory: Path, port: int, args: list[str], binary: str = "redis-server",
                 config: str | None = None) -> None:
        self.name = name
        self.directory = directory.resolve()
        self.port = port
        self.args = args
        self.binary = binary
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / f"{self.name}.log"

    def client(self, timeout: float = 1.0) -> redis.Redis:
        return redis.Redis(HOST, self.port, socket_timeout=timeout, socket_connect_timeout=timeout)

    def start(self, timeout: float = 10.0) -> ServerProcess:
        binary = shutil.which(self.binary)
        if binary is None:
            raise RuntimeError(f"{self.binary} is not installed (Debian: apt-get install redis-server redis-sentinel)")
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [binary]
        if self.config is not None:  # sentinels rewrite their config file: a fresh copy each start
            conf = self.directory / f"{self.name}.conf"
            if not conf.exists():
                conf.write_text(self.config)
            argv.append(str(conf))
        argv += ["--bind", HOST, "--port", str(self.port), "--dir", str(self.directory), "--daemonize", "no",
                 "--protected-mode", "yes", "--loglevel", "notice", "--logfile", str(self.log), *self.args]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        try:
            wait_until(f"{self.name} answering PING", self._ping, timeout)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {self.tail()}") from None
        return self

    def _ping(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited: {self.tail()}")
        with self.client(0.5) as c:
            return bool(c.ping())

    def tail(self, n: int = 800) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pause(self) -> None:
        """SIGSTOP: a hung server (connections are accepted by the kernel, nothing answers)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None


# --- Cluster ----------------------------------------------------------------------------------


@dataclass
class RedisClusterTopology:
    """Three masters, no replicas, slots split evenly. `url` is the gateway's HALLGATE_REDIS_URL."""

    nodes: list[ServerProcess]
    ranges: list[tuple[int, int]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(n.address for n in self.nodes)

    def node_for_key(self, key: str) -> ServerProcess:
        slot = key_slot(key.encode())
        for node, (lo, hi) in zip(self.nodes, self.ranges, strict=True):
            if lo <= slot <= hi:
                return node
        raise LookupError(slot)

    def start(self, timeout: float = 15.0) -> RedisClusterTopology:
        for n in self.nodes:
            n.start()
        per = 16384 // len(self.nodes)
        self.ranges = [(i * per, 16383 if i == len(self.nodes) - 1 else (i + 1) * per - 1)
                       for i in range(len(self.nodes))]
        for epoch, (node, (lo, hi)) in enumerate(zip(self.nodes, self.ranges, strict=True), start=1):
            with node.client() as c:
                c.execute_command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
                c.execute_command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
        with self.nodes[0].client() as c:
            for other in self.nodes[1:]:
                c.execute_command("CLUSTER", "MEET", HOST, other.port, _bus_port(other))
        self.wait_ok(timeout)
        return self

    def wait_ok(self, timeout: float = 15.0, nodes: list[ServerProcess] | None = None) -> None:
        """Until every (given) node reports cluster_state:ok, knows all nodes and all 16384 slots
        are assigned and ok in its view."""
        def ok() -> bool:
            for n in nodes or self.nodes:
                with n.client() as c:
                    info = _cluster_info(c)
                if (info.get("cluster_state") != "ok" or info.get("cluster_known_nodes") != str(len(self.nodes))
                        or info.get("cluster_slots_ok") != "16384"):
                    return False
            return True

        wait_until("cluster_state:ok on every node", ok, timeout)

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()


def _bus_port(node: ServerProcess) -> int:
    return int(node.args[node.args.index("--cluster-port") + 1])


def _cluster_info(c: redis.Redis) -> dict[str, str]:
    raw = c.execute_command("CLUSTER", "INFO")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.split(":", 1) for line in text.split() if ":" in line)


def cluster_node(directory: Path, i: int, port: int, bus_port: int) -> ServerProcess:
    # An explicit bus port (cluster-port): the default port + 10000 may lie outside 1..65535.
    return ServerProcess(f"node{i}", directory / f"node{i}", port, [
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS), "--cluster-port", str(bus_port),
        # With no replicas, a lost master's slots are gone until it returns; the other masters'
        # slots stay writable (full coverage would take the whole cluster down with it).
        "--cluster-require-full-coverage", "no",
        *DATA_NODE_ARGS])


@contextlib.contextmanager
def running_cluster(directory: Path, masters: int = 3) -> Iterator[RedisClusterTopology]:
    ports = free_ports(2 * masters)
    topology = RedisClusterTopology([cluster_node(directory, i, ports[2 * i], ports[2 * i + 1])
                                     for i in range(masters)])
    try:
        yield topology.start()
    finally:
        topology.stop()


# --- Sentinel ---------------------------------------------------------------------------------


@dataclass
class RedisSentinelTopology:
    """A master and its replicas (one unless asked for more) of service `SERVICE`, watched by three
    sentinels (quorum 2)."""

    data: list[ServerProcess]  # [initial master, initial replica, further replicas...]
    sentinels: list[ServerProcess]

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(s.address for s in self.sentinels) + f"/{SERVICE}"

    def master_address(self) -> tuple[str, int] | None:
        """The master as the sentinels report it (None while they do not agree on a healthy one)."""
        seen = set()
        for s in self.sentinels:
            if not s.running:
                continue
            with s.client() as c:
                state: dict[str, Any] = c.sentinel_master(SERVICE)
            if not state.get("is_master") or state.get("is_sdown") or state.get("is_odown"):
                return None
            seen.add((str(state["ip"]), int(state["port"])))
        return seen.pop() if len(seen) == 1 else None

    def master(self) -> ServerProcess:
        address = self.master_address()
        for n in self.data:
            if address == (HOST, n.port):
                return n
        raise LookupError(address)

    def start(self, timeout: float = 20.0) -> RedisSentinelTopology:
        for n in self.data:
            n.start()
        for s in self.sentinels:
            s.start()

        def ready() -> bool:
            # Every sentinel sees the master healthy, the replicas in sync and the other two sentinels:
            # only then can a failover start as soon as the master dies.
            if self.master_address() != (HOST, self.data[0].port):
                return False
            replicas = len(self.data) - 1
            for s in self.sentinels:
                with s.client() as c:
                    state = c.sentinel_master(SERVICE)
                    if (int(state["num-other-sentinels"]) != len(self.sentinels) - 1
                            or int(state["num-slaves"]) < replicas):
                        return False
            for n in self.data[1:]:
                with n.client() as c:
                    if c.info("replication").get("master_link_status") != "up":
                        return False
            return True

        wait_until("sentinels ready", ready, timeout, every=0.1)
        return self

    def wait_failover(self, old: ServerProcess, timeout: float = 20.0) -> ServerProcess:
        """Until the sentinels agree on a master other than `old` and it accepts writes."""
        def promoted() -> ServerProcess | None:
            address = self.master_address()
            if address is None or address == (HOST, old.port):
                return None
            new = self.master()
            with new.client() as c:
                return new if c.info("replication").get("role") == "master" else None

        return wait_until("failover", promoted, timeout, every=0.1)

    def stop(self) -> None:
        for s in self.sentinels:
            s.stop()
        for n in self.data:
            n.stop()


def sentinel_config(master_port: int) -> str:
    return "\n".join([
        f"sentinel monitor {SERVICE} {HOST} {master_port} 2",
        f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
        f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
        f"sentinel parallel-syncs {SERVICE} 1",
        "",
    ])


@contextlib.contextmanager
def running_sentinel(directory: Path, sentinels: int = 3, replicas: int = 1) -> Iterator[RedisSentinelTopology]:
    """`replicas`: 1 (the tests), or 2 as production needs with audit replicas = 1 (docs/scale-out.md)."""
    master_port, *ports = free_ports(1 + replicas + sentinels)
    replica_ports, sentinel_ports = ports[:replicas], ports[replicas:]
    master = ServerProcess("master", directory / "master", master_port, [*DATA_NODE_ARGS])
    names = ["replica", *(f"replica{i}" for i in range(2, replicas + 1))]
    copies = [ServerProcess(name, directory / name, port, ["--replicaof", HOST, str(master_port), *DATA_NODE_ARGS])
              for name, port in zip(names, replica_ports, strict=True)]
    watchers = [ServerProcess(f"sentinel{i}", directory / f"sentinel{i}", sentinel_ports[i], [],
                              binary="redis-sentinel", config=sentinel_config(master_port))
                for i in range(sentinels)]
    topology = RedisSentinelTopology([master, *copies], watchers)
    try:
        yield topology.start()
    finally:
        topology.stop()

