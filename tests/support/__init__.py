"""Helpers shared by several test files: plain functions, classes and constants, never fixtures
(those stay in the conftest.py files). Test modules import from here and never from each other.

    subscribers  the simulator's seed, its demo numbers and their service passwords, `month`
    dates        months in the operator's zone, protobuf timestamps
    tls          the test trust domain, terminal certificate names, client credentials, `tls_env`
    processes    `hallgate` as real processes (Proc, `serve`, the CLI, a billing-sim to kill)
    outbox       one-time codes from the development SMS outbox
    staff        staff passwords and TOTP codes, staff sign-in on a served process
    status       what a refused call carries (details, violations, reason), `refused`, `outcome`
    trail        the audit trail as stored in Redis
    waiting      bounded polling, sync and async
    metrics      Prometheus scrapes: samples, no subscriber number in them
    clerk        ID documents as a clerk reads them
    legal        LegalService messages and a legal desk signed in on a served gateway
    legal_world  the legal desk's rules over in-memory fakes
    topologies   Redis Cluster and Sentinel on loopback
"""
