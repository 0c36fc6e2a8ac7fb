"""Demo staff for the development setup (`hallgate serve --dev`, `make run`), created once in an
empty directory. Each demo account is a person of its own, with an employee number, so four eyes
on the legal channel works with them as it does with real staff."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace

import pyotp

from gateway.domain import passwords
from gateway.domain.errors import FailedPrecondition
from gateway.domain.policy import Role
from gateway.domain.ports import StaffDirectory, StaffRecord

DEMO_PASSWORD = "hallgate2026"  # noqa: S105 - development demo accounts only, printed on start
# (staff id, role, hall, employee number)
DEMO_STAFF = [("C1001", Role.CLERK, "H001", "E9001"), ("M1001", Role.HALL_MANAGER, "H001", "E9002"),
              ("L1001", Role.LEGAL_OFFICER, "B01", "E9003"), ("L2001", Role.LEGAL_APPROVER, "B01", "E9004"),
              ("A1001", Role.AUDITOR, "B01", "E9005")]


async def seed_demo_staff(directory: StaffDirectory, hash_n: int) -> list[tuple[str, str, str, str]]:
    """The demo accounts as (id, role, hall, TOTP secret); creates them if the directory is empty.
    Demo accounts an older version made without an employee number get theirs now."""
    existing = await directory.all()
    if not existing:
        hashed = await asyncio.to_thread(passwords.hash_password, DEMO_PASSWORD, hash_n)
        for staff_id, role, hall, employee_no in DEMO_STAFF:
            await directory.put(StaffRecord(staff_id, f"Demo {role.value}", role.value, hall, hashed, time.time(),
                                            pyotp.random_base32(), employee_no=employee_no))
        existing = await directory.all()
    numbers = {i: e for i, _, _, e in DEMO_STAFF}
    for record in existing:
        if record.staff_id in numbers and not record.employee_no:
            with contextlib.suppress(FailedPrecondition):  # that number went to someone else: leave it
                await directory.put(replace(record, employee_no=numbers[record.staff_id]))
    return [(r.staff_id, r.role, r.hall, r.totp_secret) for r in existing if r.staff_id in numbers]
