"""The CLI's command line (gateway/cli/parsing.py): connection options before or after the command,
parse errors that never repeat a value typed, method names in short form, the legal example
request's dates. Parsing only: the commands against a served gateway are in
tests/e2e/test_cli_polish.py."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from google.protobuf import json_format

from gateway.cli import parsing
from gateway.cli.audit import full_method, methods
from gateway.cli.legal import example_request
from gateway.cli.main import build_parser, main
from hallgate_pb.v1 import legal_pb2

SECRET = "Zq9x-pasted-TOKEN-7Hk2"  # what a misplaced staff or access token looks like


def parsed(*argv: str) -> argparse.Namespace:
    return parsing.parse(build_parser(), list(argv))


@pytest.mark.parametrize("argv", [
    ["--target", "10.0.0.9:50051", "kiosk", "request-code", "13800000001"],
    ["kiosk", "--target", "10.0.0.9:50051", "request-code", "13800000001"],
    ["kiosk", "request-code", "13800000001", "--target", "10.0.0.9:50051"],
    ["--target=10.0.0.9:50051", "kiosk", "request-code", "13800000001"],
    ["kiosk", "request-code", "13800000001", "--target=10.0.0.9:50051"],
])
def test_the_target_is_taken_before_or_after_the_command(argv):
    args = parsed(*argv)
    assert (args.target, args.msisdn, args.cert) == ("10.0.0.9:50051", "13800000001", "kiosk-H001-K01")


@pytest.mark.parametrize("group,leaf", [("clerk", ["profile", "--session", "S"]), ("legal", ["list"]),
                                        ("lending", ["overdue"]), ("audit", ["query"]),
                                        ("incident", ["list"]), ("clerk", ["sign-out"])])
def test_staff_token_and_cert_before_the_group_after_it_or_after_the_command(group, leaf):
    for argv in (["--staff-token", "T1", "--cert", "mine", group, *leaf],
                 [group, "--staff-token", "T1", "--cert", "mine", *leaf],
                 [group, *leaf, "--staff-token", "T1", "--cert", "mine"],
                 ["--cert", "mine", group, *leaf, "--staff-token", "T1"]):
        args = parsed(*argv)
        assert (args.staff_token, args.cert) == ("T1", "mine"), argv


def test_the_later_more_specific_option_wins_and_defaults_stand_otherwise(monkeypatch):
    monkeypatch.delenv("HALLGATE_TARGET", raising=False)
    assert parsed("--target", "a:1", "kiosk", "--target", "b:2", "end", "--token", "t").target == "b:2"
    assert parsed("kiosk", "--target", "b:2", "end", "--token", "t", "--target", "c:3").target == "c:3"
    assert parsed("kiosk", "end", "--token", "t").target == "127.0.0.1:50051"
    assert parsed("legal", "list").cert == "legal-B01-L01"  # each group its terminal's certificate
    assert parsed("audit", "status").cert == "audit-B01-A01"


def test_the_help_names_the_connection_options_everywhere(capsys):
    for argv in (["--help"], ["kiosk", "calls", "--help"], ["clerk", "profile", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert "--target" in out and "--cert" in out, argv


MISPLACED = [
    ["kiosk", "calls", SECRET, "--token", "x", "--month", "2026-11"],  # the token without its flag
    [SECRET, "kiosk", "end", "--token", "x"],  # a token typed as the command
    ["clerk", SECRET, "profile"],
    ["clerk", "--staff-token", "T", "open", "13800000001", "--purpose", SECRET],
    ["audit", "query", "--limit", SECRET],
    ["kiosk", "calls", f"--json={SECRET}", "--token", "x", "--month", "m"],
    ["kiosk", "calls", "--token", "x", "--month", "m", f"--tokn={SECRET}"],
    ["--staff-token", SECRET, "staff", "list"],  # a group without staff tokens
    ["audit", "query", "--method", SECRET],
    ["incident", "report", "--summary", "s", "--actor-kind", "staff", "--actor", "C1", "--from", SECRET,
     "--to", "now"],
]


@pytest.mark.parametrize("argv", MISPLACED)
def test_a_misplaced_token_is_never_echoed(argv, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and SECRET not in err and "pasted" not in err, err
    assert "Traceback" not in err


def test_the_error_names_the_position_or_the_option(capsys):
    with pytest.raises(SystemExit):
        main(["kiosk", "calls", SECRET, "--token", "x", "--month", "m"])
    assert "unrecognized arguments: the word at position 3 (not shown)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["kiosk", "calls", "--token", "x", "--month", "m", f"--tokn={SECRET}"])
    assert "option --tokn with a value (not shown) at position 7" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([SECRET, "kiosk"])
    err = capsys.readouterr().err
    assert "invalid choice: the word at position 1 (not shown)" in err and "'kiosk'" in err  # the choices stay
    with pytest.raises(SystemExit):
        main(["clerk", "open", "13800000001", "--purpose", SECRET])
    assert "argument --purpose: invalid choice: the word at position 5" in capsys.readouterr().err


def test_method_names_in_short_or_full_form():
    full = "/hallgate.v1.KioskService/ListCallDetails"
    for given in ("ListCallDetails", "KioskService/ListCallDetails", "hallgate.v1.KioskService/ListCallDetails",
                  full):
        assert full_method(given) == full
    assert full_method("RevealNumbers") == "/hallgate.v1.IncidentService/RevealNumbers"
    assert full_method("maintenance/lending") == "maintenance/lending"  # not an API method: as given
    assert full_method("") == ""
    with pytest.raises(argparse.ArgumentTypeError):
        full_method("ListCallDetail")
    names = [m for ms in methods().values() for m in ms]
    assert len(names) == len(set(names)), "a short name must name one method"
    assert parsed("audit", "query", "--method", "SignIn").method == "/hallgate.v1.StaffService/SignIn"
    assert parsed("audit", "tail", "--method", "HandOut").method == "/hallgate.v1.LendingService/HandOut"


def test_the_help_lists_every_method(capsys):
    with pytest.raises(SystemExit):
        main(["audit", "query", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for service, names in methods().items():
        assert service in out
        for name in names:
            assert name in out, name


@pytest.mark.parametrize("today", [date(2026, 11, 30), date(2027, 1, 1), date(2027, 2, 28), date(2026, 3, 3)])
def test_the_example_request_dates_are_relative_to_today(today):
    doc = example_request(today, "Asia/Shanghai")
    req = json_format.Parse(json.dumps(doc), legal_pb2.RegisterRequestRequest())
    letter = date.fromisoformat(req.letter.date)
    start, end = req.window.start.ToDatetime(tzinfo=UTC), req.window.end.ToDatetime(tzinfo=UTC)
    assert 0 < (today - letter).days <= 7
    assert start < end <= datetime(today.year, today.month, today.day, tzinfo=UTC)
    assert (end - start).days in range(56, 63)  # two calendar months
    assert doc["window"]["end"].startswith(f"{today.year:04d}-{today.month:02d}-01T00:00:00+08:00")


def test_example_request_prints_todays_request(capsys):
    assert main(["legal", "example-request", "--timezone", "Asia/Shanghai"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == example_request(datetime.now(ZoneInfo("Asia/Shanghai")).date(), "Asia/Shanghai")
