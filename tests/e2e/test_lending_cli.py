"""The README's custodian/manager walk-through with the real CLI against `hallgate serve --dev
--workers 2` (two gateway processes, one embedded Redis): `hallgate staff add` a custodian, then
`hallgate lending` register, request, approve (the borrower's own approval refused), hand-out,
where, held-by, overdue, return; and an overdue loan alerted once across both processes."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.support.processes import Proc, add_staff, banner_staff, hallgate
from tests.support.subscribers import SIM

DEMO_PASSWORD = "hallgate2026"
KPASS = "custody2026"


@pytest.mark.timeout(120)
def test_the_custodian_and_manager_walk_through(tmp_path: Path) -> None:
    data = tmp_path / "d"
    gw = Proc(["serve", "--dev", "--workers", "2", "--listen", "{address}", "--data-dir", str(data), *SIM],
              {"HALLGATE_LOAN_OVERDUE_CHECK": "0.3"}, tmp_path / "gw.log")
    try:
        gw.wait_serving(data / "pki")
        demo = banner_staff(gw.log)
        custodian_secret = add_staff(data, "K1001", "custodian", "H001", "E9101", KPASS, name="Li Jing")
        conn = ["lending", "--target", gw.address, "--data-dir", str(data)]

        def cli(token: str, *args: str) -> str:
            done = hallgate(*conn, "--staff-token", token, *args)
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout.strip()

        def sign_in(staff_id: str, password: str, secret: str) -> str:
            done = hallgate(*conn, "sign-in", staff_id, "--password", password, "--totp-secret", secret)
            assert done.returncode == 0, done.stderr
            return done.stdout.strip()

        k = sign_in("K1001", KPASS, custodian_secret)
        c = sign_in("C1001", DEMO_PASSWORD, demo["C1001"])
        m = sign_in("M1001", DEMO_PASSWORD, demo["M1001"])

        assert "on the shelf of hall H001" in cli(k, "register", "H001-CT-2024-0001", "--kind", "contract",
                                                  "--description", "service contract, March 2024")
        loan = cli(c, "request", "H001-CT-2024-0001", "--reason", "customer disputes the start date", "--days", "1")
        assert re.fullmatch(r"LN-[0-9A-F]{16}", loan)
        assert cli(m, "approve", loan, "--reason", "dispute ticket 4711") == f"{loan}: APPROVED"
        assert "OUT" in cli(k, "hand-out", loan)
        where = cli(m, "where", "H001-CT-2024-0001")
        assert "lent to C1001 since" in where and "due" in where and loan in where
        assert loan in cli(m, "held-by", "C1001")
        assert "RETURNED" in cli(k, "return", loan)
        assert "on the shelf" in cli(c, "where", "H001-CT-2024-0001")

        # The manager's own loan: refused with the reason, nothing changed.
        own = cli(m, "request", "H001-CT-2024-0001", "--reason", "checking the signature")
        done = hallgate(*conn, "--staff-token", m, "approve", own, "--reason", "mine")
        assert done.returncode == 1 and "PERMISSION_DENIED" in done.stderr
        cli(m, "cancel", own, "--reason", "not needed after all")

        # A loan due in a few seconds: listed as overdue, alerted once across both processes.
        short = cli(c, "request", "H001-CT-2024-0001", "--reason", "a quick look", "--days", str(8 / 86400))
        cli(m, "approve", short, "--reason", "ok")
        cli(k, "hand-out", short)
        deadline = time.monotonic() + 30
        while short not in cli(m, "overdue") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "OVERDUE" in cli(m, "overdue")
        time.sleep(2)  # a few more checks by each process
        alerts = [line for line in gw.log.read_text().splitlines()
                  if "loan_overdue" in line and "loan_overdue_" not in line and short in line]
        assert len(alerts) == 1, alerts
    finally:
        code = gw.stop(timeout=20)
    assert code == 0, gw.log.read_text()[-3000:]
    assert "Traceback" not in gw.log.read_text()
