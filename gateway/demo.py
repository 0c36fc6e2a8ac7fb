"""Demo staff for the embedded development setup (`make run`), created once in an empty directory."""

from __future__ import annotations

import asyncio
import time

import pyotp

from gateway import passwords
from gateway.policy import Role
from gateway.ports import StaffDirectory, StaffRecord

DEMO_PASSWORD = "hallgate2026"  # noqa: S105 - development demo accounts only, printed on start
DEMO_STAFF = [("C1001", Role.CLERK, "H001"), ("M1001", Role.HALL_MANAGER, "H001"),
              ("L1001", Role.LEGAL_OFFICER, "B01"), ("L2001", Role.LEGAL_APPROVER, "B01"),
              ("A1001", Role.AUDITOR, "B01")]


async def seed_demo_staff(directory: StaffDirectory, hash_n: int) -> list[tuple[str, str, str, str]]:
    """The demo accounts as (id, role, hall, TOTP secret); creates them if the directory is empty."""
    existing = await directory.all()
    if not existing:
        hashed = await asyncio.to_thread(passwords.hash_password, DEMO_PASSWORD, hash_n)
        for staff_id, role, hall in DEMO_STAFF:
            await directory.put(StaffRecord(staff_id, f"Demo {role.value}", role.value, hall, hashed, time.time(),
                                            pyotp.random_base32()))
        existing = await directory.all()
    demo_ids = {i for i, _, _ in DEMO_STAFF}
    return [(r.staff_id, r.role, r.hall, r.totp_secret) for r in existing if r.staff_id in demo_ids]
