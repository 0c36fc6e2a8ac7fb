"""SMSC simulator: a stand-in SMS centre speaking SMPP v3.4 (Issue 1.2) on loopback, as its own process.

The gateway submits SMS through an SMPP client library (an ESME). This package is the other end,
written separately from the specification with its own `struct` PDU codec and importing no SMPP
library, so that a misreading of the protocol in the client cannot be mirrored here and pass
unnoticed: the two only agree if both agree with the specification. stdlib and asyncio only.

What the phones received goes to a JSON Lines outbox (adapters/sms_outbox.read_outbox reads it);
a control port lets tests throttle, crash, fail binds, withhold receipts or make numbers
undeliverable or unreachable. See docs/smsc-sim.md.

    python -m adapters.smsc_sim --listen 127.0.0.1:2775 --outbox data/sms-outbox.jsonl
"""
