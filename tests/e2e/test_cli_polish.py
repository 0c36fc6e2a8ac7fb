"""The CLI where users tripped (issue 17, item 4), against a real gateway over mutual TLS: options
before or after the command, `kiosk history`, reports as text with --json, method names in short
form, a reused TOTP code explained, new passwords typed twice at a real terminal (a pty), no
tracebacks when the gateway or Redis is away or nobody can answer a prompt, and today's legal
example request registered as it is."""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters.redis_server import free_port
from gateway.cli.main import main as cli_main
from hallgate_pb.v1 import kiosk_pb2
from tests.support.processes import HALLGATE, hallgate
from tests.support.staff import STAFF_PASSWORD, fresh_totp
from tests.support.subscribers import ORDINARY
from tests.support.tls import AUDIT_CERT, CLERK_CERT, KIOSK_CERT, LEGAL_CERT

LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")
ROOT = Path(__file__).resolve().parents[2]
MONTH = time.strftime("%Y-%m")

pytestmark = pytest.mark.timeout(120)


def tls(gw, cert: str) -> list[str]:
    """The connection options for the terminal `cert` of the harness `gw`."""
    return ["--target", f"127.0.0.1:{gw.port}", "--cert", str(gw.pki / f"{cert}.crt"), "--ca", str(gw.pki / "ca.crt")]


async def run(capsys, *argv: str) -> tuple[int, str, str]:
    """The CLI in this process (its blocking gRPC off the server's loop): exit code, stdout without
    the gateway's own log lines, stderr."""
    capsys.readouterr()
    code = await asyncio.to_thread(cli_main, list(argv))
    out, err = capsys.readouterr()
    return code, "\n".join(line for line in out.splitlines() if not LOG_LINE.match(line)), err


async def staff(gw, staff_id: str, role: str, cert: str, hall: str) -> str:
    secret = await gw.add_staff(staff_id, role, hall=hall)
    md = await gw.staff_sign_in(cert, staff_id, secret)
    return md[0][1].removeprefix("Bearer ")


# --- options before or after the command ------------------------------------------------------------


async def test_connection_options_before_the_group_after_it_and_after_the_command(gw, capsys):
    opts = tls(gw, KIOSK_CERT)
    for argv in ([*opts, "kiosk", "request-code", ORDINARY], ["kiosk", *opts, "request-code", ORDINARY],
                 ["kiosk", "request-code", ORDINARY, *opts]):
        await gw.redis.flushall()  # one code a minute per number: start afresh each time
        code, out, err = await run(capsys, *argv)
        assert code == 0, err
        assert "a code is on its way by SMS" in out


async def test_a_staff_token_after_the_command(gw, capsys):
    token = await staff(gw, "A1001", "auditor", AUDIT_CERT, "B01")
    code, out, err = await run(capsys, "audit", "query", "--method", "SignIn", *tls(gw, AUDIT_CERT),
                               "--staff-token", token, "--json")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert events and {e["method"] for e in events} == {"/hallgate.v1.StaffService/SignIn"}


# --- kiosk history, reports as text and JSON, short method names -------------------------------------


async def test_kiosk_history_as_text_and_json(gw, capsys):
    token = await gw.sign_in(ORDINARY)
    [*_] = [c async for c in gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token,
                                                                                       month=MONTH))]
    want = [m.record async for m in gw.stub.ListAccessHistory(kiosk_pb2.ListAccessHistoryRequest(
        access_token=token))]
    assert want, "the call list leaves an access"
    code, out, err = await run(capsys, "kiosk", "history", "--token", token, "--json", *tls(gw, KIOSK_CERT))
    assert code == 0, err
    got = [json.loads(line) for line in out.splitlines()]  # newest first: the history viewed just before
    assert got[0]["what"].startswith("access history viewed") and "time" in got[0]
    assert [(g["what"], g["channel"], g["outcome"]) for g in got[1:]] == [(w.what, w.channel, w.outcome) for w in want]
    code, out, err = await run(capsys, *tls(gw, KIOSK_CERT), "kiosk", "history", "--token", token,
                               "--timezone", "Asia/Shanghai")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == len(want) + 2 and want[0].what in lines[2] and "access history viewed" in lines[0]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  ", lines[0])
    assert token not in out + err
    assert re.search(r"\d+ accesses", err)


async def test_audit_query_takes_the_short_method_name(gw, capsys):
    token = await gw.sign_in(ORDINARY)
    [*_] = [c async for c in gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token,
                                                                                       month=MONTH))]
    auditor = await staff(gw, "A1001", "auditor", AUDIT_CERT, "B01")
    results = {}
    for name in ("ListCallDetails", "/hallgate.v1.KioskService/ListCallDetails"):
        code, out, err = await run(capsys, "audit", *tls(gw, AUDIT_CERT), "--staff-token", auditor, "query",
                                   "--method", name, "--json")
        assert code == 0, err
        results[name] = [json.loads(line) for line in out.splitlines()]
    assert results["ListCallDetails"] == results["/hallgate.v1.KioskService/ListCallDetails"]
    assert results["ListCallDetails"] and all(e["method"] == "/hallgate.v1.KioskService/ListCallDetails"
                                              for e in results["ListCallDetails"])
    code, out, err = await run(capsys, "audit", *tls(gw, AUDIT_CERT), "--staff-token", auditor, "query",
                               "--method", "ListCallDetails")
    assert code == 0 and "ListCallDetails" in out and "{" not in out  # text: one event a line


async def test_audit_status_reads_as_text_and_as_json(gw, capsys, clean_redis, monkeypatch):
    await gw.request_code(ORDINARY)  # a few events on the chain
    monkeypatch.setenv("HALLGATE_AUDIT_CHAIN", gw.settings.audit_chain)
    code, out, err = await run(capsys, "audit", "status", "--redis-url", clean_redis, "--json")
    assert code == 0, err
    doc = json.loads(out)
    length = len(await gw.audit_events())
    assert doc["chain"] == gw.settings.audit_chain and doc["events_in_redis"] == length
    assert doc["head"]["seq"] == length and doc["checkpoint"] is None
    code, out, err = await run(capsys, "audit", "status", "--redis-url", clean_redis)
    assert code == 0, err
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines()[:4])
    assert rows["events in Redis"] == f"{length:,}"
    assert rows["head"].startswith(f"seq {length:,} (entry ")
    assert rows["checkpoint"] == "none: nothing trimmed yet"
    assert "ChainStatus(" not in out


# --- staff sign-in: a reused TOTP code, a new password typed twice -----------------------------------


async def test_a_reused_totp_code_is_explained_and_answered_as_a_wrong_one(gw, capsys):
    secret = await gw.add_staff("C1001", "clerk", hall="H001")
    code_now = fresh_totp(secret)
    base = ["clerk", *tls(gw, CLERK_CERT), "sign-in", "C1001", "--password", STAFF_PASSWORD]
    code, out, err = await run(capsys, *base, "--totp", code_now)
    assert code == 0 and len(out.strip()) > 20, err
    code, out, reused = await run(capsys, *base, "--totp", code_now)
    assert code == 1 and out == ""
    assert "wait for the next one" in reused and "UNAUTHENTICATED" in reused
    wrong = f"{(int(code_now) + 500_000) % 1_000_000:06d}"
    code, out, err = await run(capsys, *base, "--totp", wrong)
    assert code == 1 and err == reused  # the gateway gives no oracle; neither does the CLI
    assert "Traceback" not in reused


def at_terminal(argv: list[str], answers: list[tuple[str, str]], env: dict[str, str] | None = None,
                timeout: float = 60) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as its controlling terminal and standard streams, typing
    each answer once its prompt has appeared; returns the exit code and everything it showed."""
    import pty

    master, slave = pty.openpty()
    # A new session (setsid, done by subprocess itself) whose first step makes the pty its controlling
    # terminal, then becomes the CLI: no preexec_fn in this threaded process.
    become = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
              "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
    p = subprocess.Popen([sys.executable, "-c", become, *HALLGATE[1:], *argv], stdin=slave, stdout=slave,
                         stderr=slave, start_new_session=True, env={**os.environ, **(env or {})})
    os.close(slave)
    shown, pending = b"", list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if pending and pending[0][0].encode() in shown:
                shown = shown.replace(pending[0][0].encode(), b"<" + pending[0][0].encode() + b">", 1)
                os.write(master, pending.pop(0)[1].encode() + b"\n")
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the other side closed: the process is done
                    break
                if not chunk:
                    break
                shown += chunk
            elif p.poll() is not None:
                break
        code = p.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    return code, shown.decode(errors="replace")


async def test_a_new_password_is_typed_twice(gw):
    secret = await gw.add_staff("C1001", "clerk", hall="H001")
    argv = ["clerk", *tls(gw, CLERK_CERT), "change-password", "C1001"]
    new = "counter2027x"
    code, shown = await asyncio.to_thread(at_terminal, argv, [
        ("current staff password:", STAFF_PASSWORD), ("new staff password", new), ("to confirm:", new + "y")])
    assert code == 1 and "differ; nothing was changed" in shown, shown
    assert new not in shown and "Traceback" not in shown  # hidden as typed
    assert not [e for e in await gw.audit_events() if e.get("method", "").endswith("/ChangePassword")]  # never sent
    code, shown = await asyncio.to_thread(at_terminal, [*argv, "--totp", fresh_totp(secret)], [
        ("current staff password:", STAFF_PASSWORD), ("new staff password", new), ("to confirm:", new)])
    assert code == 0 and "password changed" in shown, shown
    assert new not in shown
    await gw.staff_sign_in(CLERK_CERT, "C1001", secret, password=new)


async def test_the_customers_new_service_password_is_typed_twice():
    # The two entries are compared before anything is sent: no gateway needed to see a mismatch.
    code, shown = await asyncio.to_thread(at_terminal, ["clerk", "reset-password", "--session", "S",
                                                        "--target", "127.0.0.1:9"], [
        ("new service password", "480273"), ("to confirm:", "480237")])
    assert code == 1 and "the two entries of the new service password differ" in shown, shown
    assert "480273" not in shown and "480237" not in shown


# --- no tracebacks ------------------------------------------------------------------------------------


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode not in (0, 2), done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_no_traceback_when_the_gateway_is_unreachable(pki, tmp_path):
    closed = f"127.0.0.1:{free_port()}"
    opts = ["--target", closed, "--cert", str(pki / f"{KIOSK_CERT}.crt"), "--ca", str(pki / "ca.crt")]
    line = one_line_error(hallgate("kiosk", "request-code", ORDINARY, *opts, timeout=60))
    assert "no answer from a gateway at " + closed in line
    line = one_line_error(hallgate("legal", "list", "--cert", str(pki / f"{LEGAL_CERT}.crt"), "--target", closed,
                                   "--ca", str(pki / "ca.crt"), "--staff-token", "T"))
    assert "UNAVAILABLE" in line
    line = one_line_error(hallgate("kiosk", "end", "--token", "t", "--data-dir", str(tmp_path / "nowhere")))
    assert "cannot read the terminal's TLS material" in line
    assert "no answer from a gateway" in one_line_error(hallgate("health", *opts))


def test_no_traceback_for_a_bad_request_file_or_time(tmp_path):
    bad = tmp_path / "request.json"
    bad.write_text('{"agency": 3')
    line = one_line_error(hallgate("legal", "register", str(bad), "--letter", str(bad)))
    assert "is not a request in JSON" in line and "example-request" in line
    line = one_line_error(hallgate("audit", "query", "--since", "yesterday", "--target", "127.0.0.1:9"))
    assert "ISO time" in line


@pytest.mark.parametrize("argv", [["audit", "status"], ["audit", "verify", "--full"], ["sms", "queue"],
                                  ["terminal", "revoked"], ["retention", "status"], ["audit", "reindex"]])
def test_no_traceback_when_redis_is_unreachable(argv, tmp_path):
    done = hallgate(*argv, "--redis-url", f"redis://127.0.0.1:{free_port()}", "--data-dir", str(tmp_path),
                    env={"HALLGATE_SECRET_KEY": "test-secret"})
    assert "unavailable" in one_line_error(done).lower()
    done = hallgate(*argv, "--data-dir", str(tmp_path / "no-gateway-here"), env={"HALLGATE_SECRET_KEY": "x"})
    assert "unavailable" in one_line_error(done).lower()


@pytest.mark.parametrize("argv,option", [
    (["clerk", "sign-in", "C1001"], "--password or --password-stdin"),
    (["clerk", "sign-in", "C1001", "--password", "p"], "--totp"),
    (["clerk", "change-password", "C1001"], "--password-stdin"),
    (["kiosk", "authenticate", ORDINARY], "--password"),
    (["kiosk", "authenticate", ORDINARY, "--password", "1"], "--code"),
    (["clerk", "open", ORDINARY, "--purpose", "bill-enquiry"], "--service-password"),
    (["clerk", "reset-password", "--session", "S"], "--new-password"),
    (["staff", "add", "X1", "--name", "n", "--role", "clerk", "--employee-no", "E1"], "--password-stdin"),
])
def test_no_traceback_when_there_is_no_terminal_to_prompt_on(argv, option):
    target = [] if argv[0] == "staff" else ["--target", "127.0.0.1:9"]
    done = subprocess.run([*HALLGATE, *argv, *target], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60)
    line = one_line_error(done)
    assert line.startswith("error: no terminal to ask for the ") and line.endswith(f"give {option}"), line


def test_password_stdin_that_ends_early_is_one_line():
    done = subprocess.run([*HALLGATE, "clerk", "change-password", "C1001", "--password-stdin", "--totp", "1"],
                          input="only-the-current-one\n", capture_output=True, text=True, timeout=60)
    assert "standard input ended before the current and new password" in one_line_error(done)


# --- the legal channel: today's example request, reports as text ------------------------------------


async def test_the_example_request_registers_today_and_reads_as_text(gw, capsys, tmp_path):
    officer = await staff(gw, "L1001", "legal_officer", LEGAL_CERT, "B01")
    request = tmp_path / "request.json"
    code, out, err = await run(capsys, "legal", "example-request", "--out", str(request))
    assert code == 0 and "hallgate legal register" in err
    base = ["legal", *tls(gw, LEGAL_CERT), "--staff-token", officer]
    code, out, err = await run(capsys, *base, "register", str(request), "--letter",
                               str(ROOT / "docs/examples/letter.pdf"))
    assert code == 0, err
    request_id = out.strip()
    assert request_id.startswith("LR-")
    code, out, err = await run(capsys, *base, "get", request_id)
    assert code == 0, err
    rows = dict(re.split(r"\s{2,}|(?<=\w) (?=\S)", line, maxsplit=1) for line in out.splitlines()
                if line and not line.startswith(" ") and line != "history")
    assert rows["request"] == request_id and rows["state"] == "AWAITING_APPROVAL"
    assert "13800000002" in rows["targets"] and "call details" in rows["categories"]
    code, out, err = await run(capsys, *base, "get", request_id, "--json")
    assert json.loads(out)["request_id"] == request_id
    code, out, err = await run(capsys, *base, "list", "--json")
    assert [json.loads(line)["request_id"] for line in out.splitlines()] == [request_id]


def test_the_readme_walks_through_todays_example_request():
    readme = (ROOT / "README.md").read_text()
    assert "hallgate legal example-request" in readme
    assert "hallgate kiosk history" in readme


def test_nothing_points_outside_the_repository():
    """docs/hall-rules.md is the project's own; no link or path in the docs, the README or the code
    reaches outside the repository (a sibling `../shared`, a home directory)."""
    assert (ROOT / "docs/hall-rules.md").is_file()
    outside = re.compile(r"\.\./shared|\]\(\.\./\.\.|/home/\w|/Users/\w")
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "gateway").rglob("*.py")]
    hits = [f"{f.relative_to(ROOT)}: {m.group(0)}" for f in files for m in outside.finditer(f.read_text())]
    assert hits == []
    for md in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        for link in re.findall(r"\]\(([^)#\s]+)", md.read_text()):
            if "://" not in link and not link.startswith("mailto:"):
                assert (md.parent / link).resolve().is_relative_to(ROOT), f"{md.relative_to(ROOT)} -> {link}"

