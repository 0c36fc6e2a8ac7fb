"""The billing simulator's gRPC face: serves the billing contract from a SeededBilling."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import re
import signal
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2_grpc

from adapters.billing_sim.data import (
    MSISDN_RE,
    PASSPORT,
    PASSWORD_RE,
    RESIDENT_ID_CARD,
    SeededBilling,
    month_bounds,
)
from hallgate_pb.billing.v1 import billing_pb2, billing_pb2_grpc

log = logging.getLogger(__name__)

PAGE_SIZE_DEFAULT = 500
PAGE_SIZE_MAX = 2000
_DOCUMENT_TYPES = {
    billing_pb2.DOCUMENT_TYPE_RESIDENT_ID_CARD: RESIDENT_ID_CARD,
    billing_pb2.DOCUMENT_TYPE_PASSPORT: PASSPORT,
}
_DOCUMENT_ENUMS = {v: k for k, v in _DOCUMENT_TYPES.items()}
_SEXES = {"female": billing_pb2.SEX_FEMALE, "male": billing_pb2.SEX_MALE}
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{22}")  # base64url of 4-byte offset + 12-byte MAC, unpadded


async def _invalid(context: Any, message: str) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
    raise AssertionError("context.abort always raises")


class BillingSimServicer(billing_pb2_grpc.BillingServiceServicer):
    """Answers like a real billing system would, including failing loudly on malformed requests."""

    def __init__(self, data: SeededBilling) -> None:
        self._data = data
        # Derived from the seed so that simulator replicas with one seed accept each other's tokens.
        self._token_key = hashlib.sha256(b"hallgate-billing-sim-page-token\x00" + data.seed.encode()).digest()

    def _mac(self, msisdn: str, month: str, offset: int) -> bytes:
        msg = f"{msisdn}|{month}|{offset}".encode()
        return hmac.new(self._token_key, msg, hashlib.sha256).digest()[:12]

    def encode_token(self, msisdn: str, month: str, offset: int) -> str:
        """An opaque token for `offset`, bound to this number and month so it cannot be replayed on
        another query or edited to skip around."""
        raw = offset.to_bytes(4, "big") + self._mac(msisdn, month, offset)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def decode_token(self, msisdn: str, month: str, token: str) -> int | None:
        """The offset a token stands for, or None if it was not issued for this number and month."""
        if not _TOKEN_RE.fullmatch(token):
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "==")
        except (binascii.Error, ValueError):
            return None
        offset = int.from_bytes(raw[:4], "big")
        return offset if hmac.compare_digest(raw[4:], self._mac(msisdn, month, offset)) else None

    async def VerifyServicePassword(
        self, request: billing_pb2.VerifyServicePasswordRequest, context: Any
    ) -> billing_pb2.VerifyServicePasswordResponse:
        if not MSISDN_RE.fullmatch(request.msisdn):
            await _invalid(context, "msisdn must be 11 digits")
        # scrypt takes tens of milliseconds: off the event loop so other calls keep flowing.
        valid = await asyncio.to_thread(self._data.verify, request.msisdn, request.service_password)
        return billing_pb2.VerifyServicePasswordResponse(valid=valid)

    async def GetSubscriber(
        self, request: billing_pb2.GetSubscriberRequest, context: Any
    ) -> billing_pb2.GetSubscriberResponse:
        if not MSISDN_RE.fullmatch(request.msisdn):
            await _invalid(context, "msisdn must be 11 digits")
        sub = self._data.subscriber(request.msisdn)
        resp = billing_pb2.GetSubscriberResponse(exists=sub.exists)
        if sub.sim_changed_at is not None:
            resp.sim_changed_at.FromDatetime(sub.sim_changed_at)
        if sub.ported_at is not None:
            resp.ported_at.FromDatetime(sub.ported_at)
        return resp

    async def ListCallDetails(
        self, request: billing_pb2.ListCallDetailsRequest, context: Any
    ) -> billing_pb2.ListCallDetailsResponse:
        msisdn, month = request.msisdn, request.month
        if not MSISDN_RE.fullmatch(msisdn):
            await _invalid(context, "msisdn must be 11 digits")
        try:
            month_bounds(month, self._data.tz)
        except ValueError:
            await _invalid(context, 'month must be a calendar month written "YYYY-MM"')
        if request.page_size < 0:
            await _invalid(context, "page_size must not be negative")
        size = min(request.page_size or PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX)
        count = self._data.record_count(msisdn, month)
        offset = 0
        if request.page_token:
            decoded = self.decode_token(msisdn, month, request.page_token)
            if decoded is None or decoded > count:
                await _invalid(context, "page_token is not valid for this request")
            offset = decoded
        records = self._data.records(msisdn, month, offset, size)
        end = offset + len(records)
        token = self.encode_token(msisdn, month, end) if end < count else ""
        return billing_pb2.ListCallDetailsResponse(records=records, next_page_token=token)


    async def VerifyOwnerDocument(
        self, request: billing_pb2.VerifyOwnerDocumentRequest, context: Any
    ) -> billing_pb2.VerifyOwnerDocumentResponse:
        if not MSISDN_RE.fullmatch(request.msisdn):
            await _invalid(context, "msisdn must be 11 digits")
        # An unspecified or unknown document type is not an error: it is simply no one's document.
        kind = _DOCUMENT_TYPES.get(request.document_type, "")
        match = self._data.verify_owner_document(request.msisdn, kind, request.document_number, request.name)
        return billing_pb2.VerifyOwnerDocumentResponse(match=match)

    async def GetCustomerProfile(
        self, request: billing_pb2.GetCustomerProfileRequest, context: Any
    ) -> billing_pb2.GetCustomerProfileResponse:
        if not MSISDN_RE.fullmatch(request.msisdn):
            await _invalid(context, "msisdn must be 11 digits")
        try:
            owner = self._data.owner_of(request.msisdn)
        except KeyError:
            return billing_pb2.GetCustomerProfileResponse(exists=False)
        resp = billing_pb2.GetCustomerProfileResponse(
            exists=True,
            name=owner.name,
            document_type=_DOCUMENT_ENUMS.get(owner.document_type, billing_pb2.DOCUMENT_TYPE_UNSPECIFIED),
            document_number=owner.document_number,
            birth_date=owner.birth_date,
            sex=_SEXES.get(owner.sex, billing_pb2.SEX_UNSPECIFIED),
            address=billing_pb2.Address(
                province=owner.province, city=owner.city, district=owner.district, street=owner.street
            ),
            plan_name=owner.plan_name,
            account_status=owner.account_status,
            iccid=owner.iccid,
            imsi=owner.imsi,
        )
        resp.opened_at.FromDatetime(self._data.opened_at(request.msisdn))
        return resp

    async def SetServicePassword(
        self, request: billing_pb2.SetServicePasswordRequest, context: Any
    ) -> billing_pb2.SetServicePasswordResponse:
        if not MSISDN_RE.fullmatch(request.msisdn):
            await _invalid(context, "msisdn must be 11 digits")
        if not PASSWORD_RE.fullmatch(request.new_service_password):
            await _invalid(context, "new_service_password must be 6 digits")
        try:
            await asyncio.to_thread(self._data.set_password, request.msisdn, request.new_service_password)
        except KeyError:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such subscriber")
        return billing_pb2.SetServicePasswordResponse()


def _server(data: SeededBilling) -> Any:
    server = grpc.aio.server()
    billing_pb2_grpc.add_BillingServiceServicer_to_server(BillingSimServicer(data), server)
    # The standard health service, as a real billing system would have: the gateway's readiness
    # asks it through the channel its calls use.
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    return server


def server_credentials(cert_pem: bytes, key_pem: bytes, client_ca_pem: bytes | None = None
                       ) -> grpc.ServerCredentials:
    """TLS as a billing system would serve it; with `client_ca_pem`, mutual: a client must present
    a certificate that CA vouches for (the gateway's billing_tls_cert)."""
    return grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=client_ca_pem,
                                       require_client_auth=client_ca_pem is not None)


def _bind(server: Any, address: str, credentials: grpc.ServerCredentials | None = None) -> int:
    """Bind or raise: older grpcio reports a failed bind as port 0 instead of raising."""
    port = int(server.add_insecure_port(address) if credentials is None
               else server.add_secure_port(address, credentials))
    if port == 0:
        raise OSError(f"billing simulator cannot listen on {address}")
    return port


async def start_billing_sim(data: SeededBilling, host: str = "127.0.0.1", port: int = 0,
                            credentials: grpc.ServerCredentials | None = None) -> tuple[Any, int]:
    """Start a simulator (for tests and the demo), plaintext or with `credentials`; the caller
    stops the returned grpc.aio.Server."""
    server = _server(data)
    bound = _bind(server, f"[{host}]:{port}" if ":" in host else f"{host}:{port}", credentials)
    await server.start()
    return server, bound


async def serve_billing_sim(listen: str, data: SeededBilling, grace: float = 5.0,
                            credentials: grpc.ServerCredentials | None = None) -> None:
    """Serve on `listen` ("host:port"), plaintext or with `credentials`, until cancelled, SIGTERM or
    SIGINT, then let calls in flight finish for up to `grace` seconds."""
    server = _server(data)
    port = _bind(server, listen, credentials)
    await server.start()
    log.info("billing simulator listening on %s (port %d, %d subscribers, %s)", listen, port, data.subscribers,
             "plaintext" if credentials is None else "TLS")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or not Unix
            pass
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await server.stop(grace)
        log.info("billing simulator stopped")
