"""The billing simulator's test data: the seed every ring uses, its demo numbers and their service
passwords, and the flags that give a `hallgate serve` or `billing-sim` process the same data."""

from __future__ import annotations

from adapters.billing_sim.data import SeededBilling

TEST_SEED = "hallgate-test"
SUBSCRIBERS = 1200
HASH_N = 2**10

ORDINARY = "13800000001"
OTHER = "13800000002"
HEAVY = "13800000500"
SIM_SWAPPED = "13800000007"
PORTED = "13800000008"
UNKNOWN = "13900000001"

# `hallgate serve` / `hallgate billing-sim` flags for the same data as BILLING.
SIM = ["--sim-hash-n", str(HASH_N), "--sim-subscribers", str(SUBSCRIBERS), "--sim-seed", TEST_SEED]

# The data a process started with SIM holds (for its passwords, owners and records). An in-process
# simulator a test changes (a password reset) is the session's `billing_data` fixture instead.
BILLING = SeededBilling(seed=TEST_SEED, subscribers=SUBSCRIBERS, hash_n=HASH_N)


def password(msisdn: str) -> str:
    """The number's service password in the SIM data."""
    return BILLING.password_for(msisdn)
