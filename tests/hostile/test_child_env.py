"""No secret in the environment (or on the command line) of any process `hallgate serve --workers 2`
starts: its workers, the embedded redis-server, the embedded SMSC simulator. Secrets are given the
two ways an operator can, as HALLGATE_<NAME> and as HALLGATE_<NAME>_FILE; every descendant of the
supervisor is found by walking /proc and its /proc/<pid>/environ and cmdline are searched for every
secret value. The gateway still works: a code requested through one connection signs in through
another (both workers need the same server secret for that)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from adapters.postgres_server import PostgresServerProcess
from adapters.sms.sim_process import SmscSimProcess
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc
from tests.support.outbox import code_for, code_in
from tests.support.postgres import fresh_database
from tests.support.processes import BillingProc, Proc
from tests.support.subscribers import ORDINARY, password
from tests.support.tls import KIOSK_CERT, client_credentials, tls_env
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")


def secret(label: str) -> str:
    return f"{label}-{secrets.token_hex(12)}"


def ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def descendants(root: int) -> list[int]:
    """Every live process below `root`, by walking /proc once per level (bounded: 10 levels)."""
    parents = {int(d.name): ppid(int(d.name)) for d in Path("/proc").iterdir() if d.name.isdigit()}
    found: list[int] = []
    level = {root}
    for _ in range(10):
        level = {pid for pid, parent in parents.items() if parent in level}
        if not level:
            break
        found += sorted(level)
    return found


def read(pid: int, what: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{what}").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def command_of(pid: int) -> str:
    return read(pid, "cmdline").replace(b"\0", b" ").decode(errors="replace")


def assert_no_secret_in_children(gw: Proc, values: dict[str, str], want: list[str]) -> list[int]:
    """Wait until every expected kind of child runs (`want`: substrings of command lines), then
    search each descendant's environment and command line."""
    def children() -> list[int] | None:
        pids = descendants(gw.p.pid)
        commands = [command_of(p) for p in pids]
        return pids if all(sum(w in c for c in commands) >= n for w, n in _count(want).items()) else None

    pids = wait_until(f"children {want}", children, 15, every=0.1, retry_on=())
    for pid in pids:
        environ, cmdline = read(pid, "environ"), read(pid, "cmdline")
        assert environ, f"no environment readable for {pid} ({command_of(pid)})"
        for name, value in values.items():
            assert value.encode() not in environ, f"{name} in the environment of {pid}: {command_of(pid)}"
            assert value.encode() not in cmdline, f"{name} on the command line of {pid}: {command_of(pid)}"
    return pids


def _count(want: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for w in want:
        counts[w] = counts.get(w, 0) + 1
    return counts


def sign_in_across_connections(gw: Proc, pki: Path, code: Callable[[], str]) -> None:
    """A code asked through one connection signs in through another (both may land on either worker)."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.secure_channel(gw.address, client_credentials(pki, KIOSK_CERT), options=options) as a, \
            grpc.secure_channel(gw.address, client_credentials(pki, KIOSK_CERT), options=options) as b:
        kiosk_pb2_grpc.KioskServiceStub(a).RequestOneTimeCode(
            kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY), timeout=10)
        reply = kiosk_pb2_grpc.KioskServiceStub(b).Authenticate(kiosk_pb2.AuthenticateRequest(
            msisdn=ORDINARY, service_password=password(ORDINARY), one_time_code=code()), timeout=10)
        assert reply.access_token


@pytest.fixture
def billing(tmp_path: Path) -> Iterator[str]:
    sim = BillingProc(tmp_path / "billing.log").start()
    try:
        yield sim.address
    finally:
        sim.stop()


def worker_count(pids: list[int]) -> int:
    return sum("gateway.cli serve" in command_of(p) for p in pids)


def test_embedded_servers_and_workers_get_no_secret(tmp_path: Path, pki: Path, billing: str) -> None:
    """Embedded redis-server and SMSC simulator; secrets as variables and as files."""
    values = {"HALLGATE_SECRET_KEY": secret("server-secret"), "HALLGATE_AUDIT_HMAC_KEY": secret("audit-key"),
              "HALLGATE_STAFF_SECRET_KEY": secret("staff-key"), "HALLGATE_AUDIT_RETIRED_KEYS": secret("old-audit"),
              "HALLGATE_STAFF_SECRET_RETIRED_KEYS": secret("old-staff"), "HALLGATE_STAFF_TOKEN": secret("token")}
    files = tmp_path / "secrets"
    files.mkdir(mode=0o700)
    env = {**tls_env(pki), "HALLGATE_BILLING_TARGET": billing, "HALLGATE_GRACE_PERIOD": "2"}
    for i, (name, value) in enumerate(values.items()):
        if i % 2 and name != "HALLGATE_STAFF_TOKEN":  # every other one as a file
            (files / name).write_text(value + "\n")
            env[name + "_FILE"] = str(files / name)
        else:
            env[name] = value
    data = tmp_path / "d"
    gw = Proc(["serve", "--workers", "2", "--listen", "{address}", "--data-dir", str(data)], env, tmp_path / "gw.log")
    try:
        gw.wait_serving(pki)
        sign_in_across_connections(gw, pki, lambda: code_in(data, ORDINARY))
        pids = assert_no_secret_in_children(gw, values, ["gateway.cli serve", "gateway.cli serve", "redis-server",
                                                         "adapters.smsc_sim"])
        assert worker_count(pids) == 2
        # The simulator's password (the gateway's SMPP password here) reached it as an inherited file.
        [sim] = [p for p in pids if "adapters.smsc_sim" in command_of(p)]
        fd_path = command_of(sim).split("--password-file ", 1)[1].split()[0]
        sim_password = Path(f"/proc/{sim}/fd/{fd_path.rsplit('/', 1)[1]}").read_text().strip()
        assert sim_password
        assert_no_secret_in_children(gw, {"SMPP password": sim_password}, ["gateway.cli serve", "gateway.cli serve"])
    finally:
        code = gw.stop(timeout=20)
    assert code == 0, gw.log.read_text()[-3000:]
    assert not any(v in gw.log.read_text() for v in values.values()), "a secret in the log"


def test_external_redis_archive_and_smsc_credentials_reach_no_child(
        tmp_path: Path, pki: Path, billing: str, redis_url: str, clean_redis: str,
        postgres_server: PostgresServerProcess) -> None:
    """URLs carrying passwords (Redis, the audit archive, the letter store) and the SMPP password,
    as variables and as files (HALLGATE_SMS_PASSWORD_FILE, the older setting, among them)."""
    redis_password, pg_password = secret("redis-pw"), secret("pg-pw")
    assert redis_url.startswith("redis://127.0.0.1:")
    databases = fresh_database(postgres_server)
    archive = next(databases)
    try:
        with_password = archive.replace("postgresql://hallgate@", f"postgresql://hallgate:{pg_password}@")
        smsc = SmscSimProcess(tmp_path / "outbox.jsonl", password=secrets.token_hex(4)).start()
        try:
            values = {"redis URL": redis_url.replace("redis://", f"redis://default:{redis_password}@"),
                      "archive URL": with_password, "letter store URL": with_password,
                      "SMPP password": smsc.password, "server secret": secret("server-secret")}
            files = tmp_path / "secrets"
            files.mkdir(mode=0o700)
            for name, value in (("redis", values["redis URL"]), ("smsc", smsc.password),
                                ("letters", values["letter store URL"])):
                (files / name).write_text(value + "\n")
            env = {**tls_env(pki), "HALLGATE_BILLING_TARGET": billing, "HALLGATE_GRACE_PERIOD": "2",
                   "HALLGATE_DATA_DIR": str(tmp_path / "d"), "HALLGATE_REDIS_URL_FILE": str(files / "redis"),
                   "HALLGATE_AUDIT_ARCHIVE_URL": values["archive URL"],
                   "HALLGATE_LEGAL_DOCUMENT_URL_FILE": str(files / "letters"),
                   "HALLGATE_SMS_URL": smsc.url, "HALLGATE_SMS_PASSWORD_FILE": str(files / "smsc"),
                   "HALLGATE_SECRET_KEY": values["server secret"]}
            gw = Proc(["serve", "--workers", "2", "--listen", "{address}"], env, tmp_path / "gw.log")
            try:
                gw.wait_serving(pki)
                # The code arrives through the external SMSC: the workers bound with the right password.
                sign_in_across_connections(gw, pki, lambda: code_for(tmp_path / "outbox.jsonl", ORDINARY, 15))
                pids = assert_no_secret_in_children(gw, values, ["gateway.cli serve", "gateway.cli serve"])
                assert worker_count(pids) == 2
                assert not any("redis-server" in command_of(p) or "smsc_sim" in command_of(p) for p in pids)
            finally:
                code = gw.stop(timeout=20)
            assert code == 0, gw.log.read_text()[-3000:]
        finally:
            smsc.stop()
    finally:
        databases.close()
