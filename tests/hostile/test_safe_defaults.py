"""Safe defaults on real processes: `hallgate serve` refuses, in one line and before touching
anything, to run without the hall's TLS material or the legal signing key unless --dev is given;
only --dev makes development keys and prints demo secrets; the data directory and everything in it
are owner-only (0700/0600), including Redis' files, keys, the outbox, legal letters and audit
exports; and one data directory serves one gateway."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import grpc
import pytest

from gateway.cli.main import build_parser
from hallgate_pb.v1 import audit_pb2, audit_pb2_grpc, kiosk_pb2, kiosk_pb2_grpc, legal_pb2_grpc
from tests.support.legal import register_message
from tests.support.processes import banner_staff, hallgate, serve, socket_closes, staff_token
from tests.support.tls import AUDIT_CERT, KIOSK_CERT, LEGAL_CERT, client_credentials, tls_env
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
TLS = ("HALLGATE_TLS_CERT", "HALLGATE_TLS_KEY", "HALLGATE_TLS_CLIENT_CA")
DEMO_PASSWORD = "hallgate2026"

pytestmark = pytest.mark.timeout(90)


def refused(data: Path, *flags: str, env: dict[str, str] | None = None) -> str:
    """Run `hallgate serve` expecting a refusal: non-zero at once, one line, no traceback."""
    done = hallgate("serve", "--listen", "127.0.0.1:0", "--data-dir", str(data), *flags, env=env, timeout=30)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stdout == "", done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def modes(root: Path) -> dict[str, int]:
    """{path relative to root: permission bits} of root and everything below it (links not followed)."""
    found = {".": stat.S_IMODE(root.lstat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_owner_only(root: Path) -> None:
    wrong = {}
    for rel, mode in modes(root).items():
        path = root / rel
        kind = path.lstat().st_mode
        want = 0o700 if stat.S_ISDIR(kind) else 0o600
        if stat.S_ISLNK(kind) or mode != want:
            wrong[rel] = oct(mode)
    assert not wrong, f"not owner-only under {root}: {wrong}"


# --- refusing -----------------------------------------------------------------------------------


def test_without_tls_material_and_signing_key_serve_refuses_naming_them(tmp_path):
    line = refused(tmp_path / "d")
    assert all(name in line for name in (*TLS, "HALLGATE_LEGAL_SIGNING_KEY", "--dev"))
    assert not (tmp_path / "d").exists()  # nothing was made: no directory, no CA, no key, no Redis


def test_with_tls_but_without_the_signing_key_serve_refuses_naming_it(tmp_path, pki):
    env = tls_env(pki)
    del env["HALLGATE_LEGAL_SIGNING_KEY"]
    line = refused(tmp_path / "d", env=env)
    assert "HALLGATE_LEGAL_SIGNING_KEY" in line and not any(name in line for name in TLS)
    assert not (tmp_path / "d").exists()


def test_with_the_signing_key_but_without_tls_serve_refuses_naming_tls(tmp_path, pki):
    env = {"HALLGATE_LEGAL_SIGNING_KEY": tls_env(pki)["HALLGATE_LEGAL_SIGNING_KEY"]}
    line = refused(tmp_path / "d", env=env)
    assert all(name in line for name in TLS) and "HALLGATE_LEGAL_SIGNING_KEY" not in line


def test_half_the_tls_material_or_a_missing_file_is_refused(tmp_path, pki):
    env = tls_env(pki)
    del env["HALLGATE_TLS_KEY"]
    assert "HALLGATE_TLS_KEY" in refused(tmp_path / "d", env=env)
    env = {**tls_env(pki), "HALLGATE_TLS_CLIENT_CA": str(tmp_path / "no-such-ca.pem")}
    assert "HALLGATE_TLS_CLIENT_CA" in refused(tmp_path / "d", env=env)
    assert not (tmp_path / "d").exists()


def test_insecure_dev_replaces_tls_but_not_the_signing_key(tmp_path):
    line = refused(tmp_path / "d", "--insecure-dev")
    assert "HALLGATE_LEGAL_SIGNING_KEY" in line and not any(name in line for name in TLS)


def test_an_edge_front_without_valid_trusted_proxies_is_refused(tmp_path, pki):
    env = {**tls_env(pki), "HALLGATE_PROXY_LISTEN": "127.0.0.1:0"}
    assert "HALLGATE_PROXY_TRUSTED" in refused(tmp_path / "d", env=env)
    env["HALLGATE_PROXY_TRUSTED"] = "10.0.0.0/33"
    assert "'10.0.0.0/33' is not an address or CIDR" in refused(tmp_path / "d", env=env)
    assert not (tmp_path / "d").exists()


def test_plaintext_to_a_billing_on_another_host_is_refused(tmp_path, pki):
    """Call lists cross that link: TLS (HALLGATE_BILLING_TLS_*), or plaintext said in so many words."""
    env = {**tls_env(pki), "HALLGATE_BILLING_TARGET": "billing.billing.svc.cluster.local:50061"}
    line = refused(tmp_path / "d", env=env)
    assert "HALLGATE_BILLING_TLS_CA" in line and "HALLGATE_BILLING_PLAINTEXT" in line
    env["HALLGATE_BILLING_TLS_CA"] = str(tmp_path / "no-such-ca.pem")
    assert "no-such-ca.pem" in refused(tmp_path / "d", env=env)
    assert not (tmp_path / "d").exists()


def test_make_run_passes_dev_and_dev_is_a_flag_and_a_variable():
    run = (ROOT / "Makefile").read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "hallgate serve --dev" in run
    assert build_parser().parse_args(["serve", "--dev"]).dev is True
    assert "HALLGATE_DEV=1" in hallgate("serve", "--help").stdout.replace("\n", " ").replace("  ", " ")


# --- production and development -----------------------------------------------------------------


def test_production_makes_no_keys_and_prints_no_demo_secrets(tmp_path, pki):
    data = tmp_path / "d"
    gw = serve(tmp_path, data, env=tls_env(pki))
    try:
        gw.wait_serving(pki)
        with gw.channel(pki) as channel:  # the embedded simulator still serves
            kiosk_pb2_grpc.KioskServiceStub(channel).RequestOneTimeCode(
                kiosk_pb2.RequestOneTimeCodeRequest(msisdn="13800000151"), timeout=10)
        listed = hallgate("staff", "list", "--data-dir", str(data))
    finally:
        code = gw.stop()
    log = gw.log.read_text()
    assert code == 0, log[-2000:]
    assert "development" not in log.lower() and "Demo" not in log and "13800000001  " not in log
    assert not (data / "pki").exists() and not (data / "legal-signing.pem").exists()
    assert listed.returncode == 0 and listed.stdout == ""  # no demo staff either


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_dev_makes_a_development_ca_and_key_and_says_so(tmp_path, how):
    data = tmp_path / "d"
    gw = serve(tmp_path, data, *(["--dev"] if how == "flag" else []),
               env={"HALLGATE_DEV": "1"} if how == "environment" else {})
    try:
        gw.wait_serving(data / "pki")
        staff = banner_staff(gw.log)
    finally:
        code = gw.stop()
    log = gw.log.read_text()
    assert code == 0, log[-2000:]
    first = next(line for line in log.splitlines() if line.startswith("hallgate is serving"))
    assert "development" in first and "DEVELOPMENT mode" in log
    assert (data / "pki" / "ca.key").is_file() and (data / "legal-signing.pem").is_file()
    assert "13800000001  " in log and set(staff) == {"A1001", "C1001", "L1001", "L2001", "M1001"}


# --- permissions --------------------------------------------------------------------------------


def test_the_data_directory_and_everything_in_it_are_owner_only(tmp_path):
    """An older data directory (0755, a 0644 outbox and a 0755 subdirectory) is tightened on start;
    after a working session — an SMS, a legal letter stored, an audit export — every directory under
    it is 0700 and every file 0600, while serving (the Redis socket too) and after the stop."""
    data = tmp_path / "d"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)  # noqa: S103 - an older, laxer data directory, on purpose
    (data / "sms-outbox.jsonl").write_text("")
    os.chmod(data / "sms-outbox.jsonl", 0o644)
    (data / "documents").mkdir(mode=0o755)
    os.chmod(data / "documents", 0o755)  # noqa: S103 - on purpose, as above
    export = tmp_path / "exports" / "events.jsonl"
    export.parent.mkdir()
    export.write_text("old export\n")
    os.chmod(export, 0o644)
    old_umask = os.umask(0o022)  # the usual umask: nothing may rely on a strict one
    try:
        gw = serve(tmp_path, data, "--dev")
    finally:
        os.umask(old_umask)
    pki = data / "pki"
    try:
        gw.wait_serving(pki)
        demo = banner_staff(gw.log)
        with gw.channel(pki) as channel:
            kiosk_pb2_grpc.KioskServiceStub(channel).RequestOneTimeCode(
                kiosk_pb2.RequestOneTimeCodeRequest(msisdn="13800000152"), timeout=10)
        officer = staff_token(gw, pki, LEGAL_CERT, "L1001", DEMO_PASSWORD, demo["L1001"])
        with gw.channel(pki, LEGAL_CERT) as channel:
            legal_pb2_grpc.LegalServiceStub(channel).RegisterRequest(
                register_message(), metadata=(("authorization", f"Bearer {officer}"),), timeout=10)
        auditor = staff_token(gw, pki, AUDIT_CERT, "A1001", DEMO_PASSWORD, demo["A1001"])
        done = hallgate("audit", "--target", gw.address, "--data-dir", str(data), "--staff-token", auditor,
                        "export", "--out", str(export))
        assert done.returncode == 0, done.stderr
        assert b"RegisterRequest" in export.read_bytes()
        assert stat.S_IMODE(export.stat().st_mode) == 0o600  # an export that existed (0644) too
        new_export = tmp_path / "exports" / "new.jsonl"
        assert hallgate("audit", "--target", gw.address, "--data-dir", str(data), "--staff-token", auditor,
                        "export", "--out", str(new_export)).returncode == 0
        assert stat.S_IMODE(new_export.stat().st_mode) == 0o600
        assert (data / "redis" / "redis.sock").is_socket()
        assert_owner_only(data)  # while serving, the live socket included
        with audit_stub(gw, pki) as stub:  # the auditor's view still works: nothing was made unreadable
            assert list(stub.QueryEvents(audit_pb2.QueryEventsRequest(), timeout=10,
                                         metadata=(("authorization", f"Bearer {auditor}"),)))
    finally:
        code = gw.stop()
    assert code == 0, gw.log.read_text()[-2000:]
    found = modes(data)
    for expected in ("redis/appendonlydir", "redis/redis.log", "secret.key", "legal-signing.pem", "pki/ca.key",
                     "pki/server.key", "sms-outbox.jsonl", "serve.lock"):
        assert expected in found, (expected, sorted(found))
    assert any(rel.startswith("documents/") and len(rel) > 70 for rel in found), sorted(found)  # the letter
    assert any(rel.endswith(".aof") for rel in found)
    assert_owner_only(data)


class audit_stub:
    def __init__(self, gw, pki: Path) -> None:
        self.channel = gw.channel(pki, AUDIT_CERT)

    def __enter__(self) -> audit_pb2_grpc.AuditServiceStub:
        return audit_pb2_grpc.AuditServiceStub(self.channel)

    def __exit__(self, *exc: object) -> None:
        self.channel.close()


# --- one data directory, one gateway ------------------------------------------------------------


def _redis_pid(gateway_pid: int) -> int:
    """The pid of the gateway's embedded redis-server (its child; /proc)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm, rest = (entry / "stat").read_text().rsplit(")", 1)
            except OSError:
                continue
            if comm.endswith("(redis-server") and int(rest.split()[1]) == gateway_pid:
                return int(entry.name)
    raise AssertionError(f"no redis-server child of {gateway_pid}")


def _kiosk_works(gw, pki: Path, msisdn: str) -> None:
    with gw.channel(pki) as channel:
        kiosk_pb2_grpc.KioskServiceStub(channel).RequestOneTimeCode(
            kiosk_pb2.RequestOneTimeCodeRequest(msisdn=msisdn), timeout=10)


def test_a_second_gateway_on_the_same_data_directory_exits_at_once_and_touches_nothing(tmp_path):
    data = tmp_path / "d"
    first = serve(tmp_path, data, "--dev", name="first")
    pki = data / "pki"
    try:
        first.wait_serving(pki)
        sock = data / "redis" / "redis.sock"
        before = (sock.stat().st_ino, _redis_pid(first.p.pid), modes(data), (data / "serve.lock").read_text())
        for flags in (["--dev"], ["--dev", "--workers", "2"]):
            started = time.monotonic()
            second = serve(tmp_path, data, *flags, name="second")
            exit_code = second.p.wait(timeout=20)
            assert exit_code != 0 and time.monotonic() - started < 15
            out = second.log.read_text()
            assert f"already served by pid {first.p.pid}" in out and "Traceback" not in out, out
            assert "hallgate is serving" not in out
        # Nothing changed: the same socket file and redis-server, no file added or altered in mode,
        # the lock still names the first gateway, which still serves.
        assert (sock.stat().st_ino, _redis_pid(first.p.pid), modes(data), (data / "serve.lock").read_text()) == before
        _kiosk_works(first, pki, "13800000153")
    finally:
        code = first.stop()
    assert code == 0, first.log.read_text()[-2000:]
    # Once the first has stopped, the directory is free again.
    third = serve(tmp_path, data, "--dev", name="third")
    try:
        third.wait_serving(pki)
        assert (data / "serve.lock").read_text().strip() == str(third.p.pid)
    finally:
        assert third.stop() == 0, third.log.read_text()[-2000:]


def test_a_killed_gateway_leaves_no_stale_lock(tmp_path):
    data = tmp_path / "d"
    first = serve(tmp_path, data, "--dev", name="first")
    first.wait_serving(data / "pki")
    first.kill()  # SIGKILL: no shutdown code runs; the kernel drops the lock, redis-server dies with it
    assert socket_closes(data / "redis" / "redis.sock", timeout=10), "the embedded redis-server outlived its gateway"
    second = serve(tmp_path, data, "--dev", name="second")
    try:
        second.wait_serving(data / "pki")
        _kiosk_works(second, data / "pki", "13800000154")
    finally:
        assert second.stop() == 0, second.log.read_text()[-2000:]


def test_workers_under_their_supervisor_do_not_trip_on_its_lock(tmp_path, pki, redis_url, clean_redis):
    """--workers 2: the supervisor holds the lock and both workers serve; a plain gateway on the same
    directory is refused, naming the supervisor."""
    data = tmp_path / "d"
    env = {**tls_env(pki), "HALLGATE_REDIS_URL": redis_url, "HALLGATE_SECRET_KEY": "k"}
    sup = serve(tmp_path, data, "--workers", "2", env=env, name="sup")
    try:
        sup.wait_serving(pki)
        wait_until("two workers started", lambda: sup.log.read_text().count('"worker_started"') >= 2, 15,
                   every=0.1, retry_on=())
        for i in range(6):  # fresh connections land on either worker; all must serve
            channel = grpc.secure_channel(sup.address, client_credentials(pki, KIOSK_CERT),
                                          options=[("grpc.use_local_subchannel_pool", 1)])
            with channel:
                kiosk_pb2_grpc.KioskServiceStub(channel).RequestOneTimeCode(
                    kiosk_pb2.RequestOneTimeCodeRequest(msisdn=f"1390000{i:04d}"), timeout=10)
        assert (data / "serve.lock").read_text().strip() == str(sup.p.pid)
        intruder = serve(tmp_path, data, env=env, name="intruder")
        assert intruder.p.wait(timeout=20) != 0
        assert f"already served by pid {sup.p.pid}" in intruder.log.read_text()
        assert '"worker_died"' not in sup.log.read_text()
    finally:
        code = sup.stop(timeout=20)
    assert code == 0, sup.log.read_text()[-3000:]
