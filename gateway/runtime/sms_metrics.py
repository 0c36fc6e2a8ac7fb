"""Prometheus series of the SMS path (adapters/sms/events.py). Labels are closed sets: message kinds,
receipt states, drop reasons. No number, no text, no SMSC message id ever becomes a label."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from gateway.runtime.metrics import word

SMS_CAPPED = Counter("hallgate_sms_capped_total", "Notices held back by the per-number daily cap, by kind.",
                     ("kind",))
SMS_SUBMITTED = Counter("hallgate_sms_submitted_total", "Messages the SMSC took (answered with its id), by kind.",
                        ("kind",))
SMS_SUBMIT_SECONDS = Histogram("hallgate_sms_submit_seconds", "Time from handing a message over to the SMSC's answer.",
                               buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
SMS_RECEIPTS = Counter("hallgate_sms_receipts_total",
                       "Final states of submitted messages: delivered, undeliverable, expired, no_receipt.",
                       ("state",))
SMS_DROPPED = Counter("hallgate_sms_dropped_total",
                      "Messages that left the queue unsent: expired (never sent late) or failed (dead letter).",
                      ("kind", "reason"))
SMS_THROTTLED = Counter("hallgate_sms_throttled_total", "Submits the SMSC answered with ESME_RTHROTTLED/RMSGQFUL.")
SMS_RECONNECTS = Counter("hallgate_sms_reconnects_total", "SMPP binds after the first (the link was lost).")
SMS_LINK_UP = Gauge("hallgate_sms_link_up", "1 while this process's SMPP session is bound.",
                    multiprocess_mode="livemax")
SMS_QUEUE_DEPTH = Gauge("hallgate_sms_queue_depth", "Messages waiting in the shared queue for the SMSC.",
                        multiprocess_mode="livemax")


class PrometheusSmsEvents:
    """adapters.sms.events.SmsEvents as Prometheus series."""

    def capped(self, kind: str) -> None:
        SMS_CAPPED.labels(word(kind)).inc()

    def submitted(self, kind: str, seconds: float) -> None:
        SMS_SUBMITTED.labels(word(kind)).inc()
        SMS_SUBMIT_SECONDS.observe(seconds)

    def receipt(self, state: str) -> None:
        SMS_RECEIPTS.labels(word(state)).inc()

    def dropped(self, kind: str, reason: str) -> None:
        SMS_DROPPED.labels(word(kind), word(reason)).inc()

    def throttled(self) -> None:
        SMS_THROTTLED.inc()

    def reconnected(self) -> None:
        SMS_RECONNECTS.inc()

    def link(self, up: bool) -> None:
        SMS_LINK_UP.set(1 if up else 0)

    def depth(self, messages: int) -> None:
        SMS_QUEUE_DEPTH.set(messages)
