"""SMPP 3.4 to the operator's SMS centre, as a well-behaved ESME, on aiosmpplib.

aiosmpplib does the protocol: the transceiver bind, enquire_link, reconnecting with backoff, long
messages split with UDH, UCS2 when the text is not GSM 7-bit, receipt parsing. This module adds
what a gateway needs around it:

- one future per hand-over, settled by the SMSC's submit_sm_resp, or failed when the link that
  carried it went down (a new bind means the old connection's answers can never come) or no answer
  came in `submit_timeout`. The dispatcher retries those, so what the SMSC took without answering
  may go twice: at least once, as SMPP allows no better;
- a window: at most `window` hand-overs await an answer at a time;
- the bind's outcome for health ("bind refused: ESME_RINVPASWD"), never a crash loop: the library
  keeps retrying with backoff;
- no text in any log: the library's own logger is silenced (it logs whole messages on errors) and
  the receipts' `text:` field is never read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from aiosmpplib import ESME, PhoneNumber, SubmitSm
from aiosmpplib.broker import SimpleBroker
from aiosmpplib.correlator import SimpleCorrelator
from aiosmpplib.hook import AbstractHook
from aiosmpplib.protocol import BindTransceiverResp, DeliverSm
from aiosmpplib.ratelimiter import AbstractRateLimiter
from aiosmpplib.retrytimer import AbstractRetryTimer
from aiosmpplib.state import NPI, TON, SmppCommandStatus

from adapters.sms.events import NoEvents, SmsEvents
from adapters.sms.queue import Queued
from adapters.sms.transport import Receipts, Rejected, Throttled, Transient

log = structlog.get_logger("hallgate.sms.smpp")

THROTTLING = {SmppCommandStatus.ESME_RTHROTTLED, SmppCommandStatus.ESME_RMSGQFUL}
# Statuses after which the same message may well go through later.
TRANSIENT = {SmppCommandStatus.ESME_RSYSERR, SmppCommandStatus.ESME_RX_T_APPN, SmppCommandStatus.ESME_RSUBMITFAIL,
             SmppCommandStatus.ESME_RINVBNDSTS, SmppCommandStatus.ESME_RUNKNOWNERR}
SUBMIT_SM_RESP, GENERIC_NACK = 0x80000004, 0x80000000
RECEIPT_STATES = {"DELIVRD": "delivered", "UNDELIV": "undeliverable", "EXPIRED": "expired",
                  "REJECTD": "undeliverable", "DELETED": "expired", "UNKNOWN": "no_receipt"}


@dataclass(frozen=True, slots=True)
class SmppConfig:
    host: str
    port: int
    system_id: str
    password: str
    source: str = "HALLGATE"
    window: int = 10
    throughput: float = 50.0  # messages per second handed over; 0: no limit
    submit_timeout: float = 10.0
    enquire_link: float = 30.0
    reconnect_max: float = 30.0


class _Backoff(AbstractRetryTimer):
    """Reconnect after 0.5 s, doubling to `ceiling`: a refused bind retries slowly, never in a loop."""

    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling
        self.delay = 0.0

    def reset(self) -> None:
        self.delay = 0.0

    def next_delay(self) -> float:
        return min(self.ceiling, max(0.5, self.delay * 2))

    async def wait(self) -> None:
        self.delay = self.next_delay()
        await asyncio.sleep(self.delay)


class _Rate(AbstractRateLimiter):
    """At most `per_second` hand-overs a second (each segment is one)."""

    def __init__(self, per_second: float) -> None:
        self.gap = 1.0 / per_second
        self.next = 0.0

    async def limit(self) -> None:
        now = time.monotonic()
        wait = self.next - now
        self.next = max(now, self.next) + self.gap
        if wait > 0:
            await asyncio.sleep(wait)


@dataclass
class _Pending:
    """One message on its way: settled once the SMSC answered every segment."""

    future: asyncio.Future[str]
    generation: int = -1  # the bind that carried it; -1 while not yet written
    segments: int = 0  # how many PDUs the library split it into (known from the first one sent)
    answered: int = 0
    smsc_id: str = ""  # the first segment's id: receipts are matched on it
    refused: SmppCommandStatus | None = None


class _Hook(AbstractHook):
    """Answers are matched to messages here, PDU by PDU, through the sequence numbers: the library's
    own aggregation of a segmented message can report it done when only its first segment was
    answered (the second not yet sent), so it is not relied on."""

    def __init__(self, link: SmppTransport) -> None:
        self.link = link

    async def sending(self, smpp_message: Any, pdu: bytes, client_id: str) -> None:
        if isinstance(smpp_message, SubmitSm):
            self.link.sent(smpp_message)

    async def received(self, smpp_message: Any, pdu: bytes, client_id: str) -> None:
        if isinstance(smpp_message, BindTransceiverResp):
            self.link.bound(smpp_message.command_status)
        elif isinstance(smpp_message, DeliverSm) and smpp_message.is_receipt():
            self.link.receipt(smpp_message)
        elif len(pdu) >= 16:
            command, status, sequence = struct.unpack("!III", pdu[4:16])
            if command in (SUBMIT_SM_RESP, GENERIC_NACK):
                self.link.answered(sequence, status, pdu[16:].split(b"\0", 1)[0].decode("ascii", "replace"))

    async def send_error(self, smpp_message: Any, error: Exception, client_id: str) -> None:
        self.link.failed(getattr(smpp_message, "log_id", ""), type(error).__name__)


class SmppTransport:
    """The SmsTransport (adapters/sms/transport.py) over one SMPP transceiver session."""

    def __init__(self, config: SmppConfig, events: SmsEvents | None = None) -> None:
        self.s = config
        self.events = events or NoEvents()
        self.pending: dict[str, _Pending] = {}
        self.sequences: dict[int, str] = {}  # sequence number of a submit awaiting its answer -> message
        self.generation = 0
        self._status = "connecting"
        self._window = asyncio.Semaphore(config.window)
        self._receipts: Receipts | None = None
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.esme = ESME(
            smsc_host=config.host, smsc_port=config.port, system_id=config.system_id, password=config.password,
            enquire_link_interval=float(config.enquire_link), log_level=logging.CRITICAL + 10,
            log_handler=logging.NullHandler(), hook=_Hook(self), broker=SimpleBroker(maxsize=config.window * 4),
            correlator=SimpleCorrelator("hallgate", max_ttl_response=max(1.0, config.submit_timeout),
                                        max_ttl_delivery=1.0),
            rate_limiter=_Rate(config.throughput) if config.throughput > 0 else None,
            retry_timer=_Backoff(config.reconnect_max), socket_timeout=max(1.0, config.submit_timeout))

    # -- the SmsTransport port ------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._status == "bound" and self.esme.session_state == self.esme.bind_mode.session_state

    def status(self) -> str:
        if self._status == "bound" and not self.ready:
            return "reconnecting"
        return self._status

    async def start(self, receipts: Receipts) -> None:
        self._receipts = receipts
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            await self.esme.start()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the library gave up: say so, never crash the gateway
            self._status = f"stopped: {type(err).__name__}"
            log.error("smpp_link_stopped", error_type=type(err).__name__)

    async def submit(self, message: Queued) -> str:
        async with self._window:
            future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self.pending[message.id] = _Pending(future)
            try:
                await self.esme.broker.enqueue(self._submit_sm(message))
                return await asyncio.wait_for(future, self.s.submit_timeout)
            except TimeoutError:
                raise Transient("no answer from the SMSC in time") from None
            finally:
                self.pending.pop(message.id, None)
                for sequence in [k for k, v in self.sequences.items() if v == message.id]:
                    del self.sequences[sequence]

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.esme.stop(), 2.0)
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        for task in list(self._tasks):
            task.cancel()

    def _submit_sm(self, message: Queued) -> SubmitSm:
        source = self.s.source
        # A sender of digits is the operator's service number (network specific); else a name.
        ton, npi = (TON.NETWORK_SPECIFIC, NPI.ISDN) if source.isdigit() else (TON.ALPHANUMERIC, NPI.UNKNOWN)
        # The gateway's numbers are the operator's own national mobile numbers (11 digits, no
        # country code): TON national, so the SMSC does not read "138..." as a country code.
        to_ton = TON.INTERNATIONAL if message.to.startswith("+") else TON.NATIONAL
        return SubmitSm(
            short_message=message.text, source=PhoneNumber(source, ton, npi),
            destination=PhoneNumber(message.to.lstrip("+"), to_ton, NPI.ISDN),
            log_id=message.id, esm_class=0b01000000,  # UDH concatenation when the text needs several parts
            registered_delivery=0b00000001, auto_message_payload=False,
            validity_period=datetime.fromtimestamp(message.expires_at, UTC))

    # -- what the hook reports ------------------------------------------------------------------

    def bound(self, status: SmppCommandStatus) -> None:
        if status in (SmppCommandStatus.ESME_ROK, SmppCommandStatus.ESME_RALYBND):
            self.generation += 1
            if self.generation > 1:
                self.events.reconnected()
            stale = [p for p in self.pending.values() if 0 <= p.generation < self.generation]
            self.sequences.clear()  # the old connection's numbers: their answers can never come
            for p in stale:  # written on a connection that is gone: its answer can never come
                if not p.future.done():
                    p.future.set_exception(Transient("the SMPP link went down before the SMSC answered"))
            if self._status != "bound":
                log.info("smpp_bound", host=self.s.host, port=self.s.port, system_id=self.s.system_id)
            self._status = "bound"
            self.events.link(True)
        else:
            if self._status != f"bind refused: {status.name}":
                log.error("smpp_bind_refused", status=status.name, host=self.s.host, port=self.s.port,
                          system_id=self.s.system_id,
                          hint="check the SMSC system id and password (HALLGATE_SMS_PASSWORD_FILE)")
            self._status = f"bind refused: {status.name}"
            self.events.link(False)

    def sent(self, submit: SubmitSm) -> None:
        pending = self.pending.get(submit.log_id)
        if pending is None:
            return
        if pending.generation < 0:
            pending.generation = self.generation
            pending.segments = max(1, submit.get_segmentation_data()[2])
        self.sequences[submit.sequence_num] = submit.log_id

    def answered(self, sequence: int, status_code: int, smsc_id: str) -> None:
        log_id = self.sequences.pop(sequence, None)
        pending = self.pending.get(log_id) if log_id is not None else None
        if pending is None or pending.future.done():
            return
        try:
            status = SmppCommandStatus(status_code)
        except ValueError:
            status = SmppCommandStatus.ESME_RUNKNOWNERR
        pending.answered += 1
        if status == SmppCommandStatus.ESME_ROK and smsc_id:
            pending.smsc_id = pending.smsc_id or smsc_id
        elif pending.refused is None or status in THROTTLING:
            pending.refused = status
        if pending.answered < pending.segments:
            return
        if pending.refused is None:
            pending.future.set_result(pending.smsc_id)
        elif pending.refused in THROTTLING:
            pending.future.set_exception(Throttled(pending.refused.name))
        elif pending.refused in TRANSIENT:
            pending.future.set_exception(Transient(pending.refused.name))
        else:
            pending.future.set_exception(Rejected(pending.refused.name))

    def failed(self, log_id: str, error: str) -> None:
        pending = self.pending.get(log_id)
        if pending is not None and not pending.future.done():
            pending.future.set_exception(Transient(error))

    def receipt(self, deliver: DeliverSm) -> None:
        try:
            parsed = deliver.parse_receipt()
        except Exception:  # a receipt we cannot read says nothing we can record
            log.warning("smpp_receipt_unreadable")
            return
        smsc_id, stat = str(parsed.get("id", "")), str(parsed.get("stat", ""))
        state = RECEIPT_STATES.get(stat)
        if not smsc_id or state is None or self._receipts is None:  # ACCEPTD and the like: not final
            return
        task = asyncio.get_running_loop().create_task(self._receipts(smsc_id, state))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
