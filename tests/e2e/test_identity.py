"""Terminal identity by mutual TLS: which channel may call which service, and who is refused.

Real TLS throughout: the session `pki` fixture's hall CA and demo terminal certificates, plus
certificates made here (another CA, expired, foreign trust domain, malformed or absent SPIFFE URI).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from adapters.dev_pki import Issued, issue, make_ca, serial_of
from gateway.runtime.bootstrap import server_credentials
from gateway.runtime.settings import Settings
from hallgate_pb.v1 import clerk_pb2, clerk_pb2_grpc, kiosk_pb2, kiosk_pb2_grpc, staff_pb2, staff_pb2_grpc
from tests.support.status import details, outcome, refused
from tests.support.subscribers import ORDINARY
from tests.support.tls import TRUST_DOMAIN
from tests.support.waiting import wait_for

Code = grpc.StatusCode
TOKEN = "A" * 43

KIOSK = "kiosk-H001-K01"
KIOSK2 = "kiosk-H001-K02"
CLERK = "clerk-H001-T07"
LEGAL = "legal-B01-L01"
AUDIT = "audit-B01-A01"


# --- helpers -------------------------------------------------------------------------------------

def hall_ca(gw) -> Issued:
    """The harness's own hall CA, so the tests can issue odd certificates it trusts."""
    return Issued((gw.pki / "ca.crt").read_bytes(), (gw.pki / "ca.key").read_bytes(), 0)


def channel_with(gw, leaf: Issued) -> grpc.aio.Channel:
    """A mutual-TLS channel presenting `leaf`, trusting the harness's server certificate."""
    creds = grpc.ssl_channel_credentials((gw.pki / "ca.crt").read_bytes(), leaf.key_pem, leaf.cert_pem)
    channel = grpc.aio.secure_channel(f"127.0.0.1:{gw.port}", creds)
    gw.closers.insert(0, channel.close)
    return channel


def kiosk_call(channel: grpc.aio.Channel):
    return kiosk_pb2_grpc.KioskServiceStub(channel).RequestOneTimeCode(
        kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY), timeout=5)


def staff_call(channel: grpc.aio.Channel):
    return staff_pb2_grpc.StaffServiceStub(channel).SignIn(
        staff_pb2.SignInRequest(staff_id="C1001", password="counter2026", totp_code="123456"), timeout=5)


def clerk_calls(channel: grpc.aio.Channel) -> dict[str, object]:
    """One call per ClerkService RPC, each as a zero-argument coroutine factory."""
    stub = clerk_pb2_grpc.ClerkServiceStub(channel)
    return {
        "RequestCustomerCode": lambda: stub.RequestCustomerCode(
            clerk_pb2.RequestCustomerCodeRequest(msisdn=ORDINARY), timeout=5),
        "OpenCustomerSession": lambda: stub.OpenCustomerSession(clerk_pb2.OpenCustomerSessionRequest(
            msisdn=ORDINARY, password_and_code=clerk_pb2.PasswordAndCodeProof(
                service_password="123456", one_time_code="123456"),
            purpose=clerk_pb2.SESSION_PURPOSE_PLAN_CHANGE), timeout=5),
        "GetCustomerProfile": lambda: stub.GetCustomerProfile(
            clerk_pb2.GetCustomerProfileRequest(customer_session=TOKEN), timeout=5),
        "ResetServicePassword": lambda: stub.ResetServicePassword(clerk_pb2.ResetServicePasswordRequest(
            customer_session=TOKEN, new_service_password="480273"), timeout=5),
        "CloseCustomerSession": lambda: stub.CloseCustomerSession(
            clerk_pb2.CloseCustomerSessionRequest(customer_session=TOKEN), timeout=5),
        "GetCodeDelivery": lambda: stub.GetCodeDelivery(
            clerk_pb2.GetCodeDeliveryRequest(customer_session=TOKEN), timeout=5),
    }


async def last_event(gw, method_suffix: str) -> dict[str, str]:
    events = [e for e in await gw.audit_events() if e["method"].endswith(method_suffix)]
    assert events, f"no audit event for {method_suffix}"
    return events[-1]


# --- which channel may call which service ----------------------------------------------------------

async def test_kiosk_certificate_reaches_the_kiosk_service_only(gw):
    ch = gw.channel_for(KIOSK)
    assert await kiosk_call(ch) is not None
    e = await refused(staff_call(ch))
    assert e.code() == Code.PERMISSION_DENIED
    for name, call in clerk_calls(ch).items():
        e = await refused(call())
        assert e.code() == Code.PERMISSION_DENIED, name
    events = await gw.audit_events()
    assert events[0]["method"].endswith("KioskService/RequestOneTimeCode")
    assert events[0]["decision"] == "allowed" and events[0]["terminal"] == "H001/kiosk/K01"
    denied = events[1:]
    assert len(denied) == 1 + len(clerk_calls(ch))
    for ev in denied:
        assert (ev["channel"], ev["hall"], ev["terminal"]) == ("kiosk", "H001", "H001/kiosk/K01")
        assert (ev["decision"], ev["code"]) == ("denied", "PERMISSION_DENIED")
        assert ev["staff_id"] == ""
    assert {ev["reason"] for ev in denied if "ClerkService" in ev["method"]} == {"wrong_channel"}


async def test_kiosk_refused_staff_sign_in_for_the_right_reason(gw):
    e = await refused(staff_call(gw.channel_for(KIOSK)))
    assert e.code() == Code.PERMISSION_DENIED
    assert details(e)["ErrorInfo"].reason == "WRONG_CHANNEL"
    assert "law-enforcement" not in (e.details() or "")
    assert (await last_event(gw, "SignIn"))["reason"] == "wrong_channel"


async def test_clerk_certificate_is_refused_the_kiosk_service(gw):
    ch = gw.channel_for(CLERK)
    e = await refused(kiosk_call(ch))
    assert e.code() == Code.PERMISSION_DENIED
    assert details(e)["ErrorInfo"].reason == "WRONG_CHANNEL"
    ev = await last_event(gw, "RequestOneTimeCode")
    assert (ev["channel"], ev["terminal"], ev["decision"], ev["reason"]) == (
        "clerk", "H001/clerk/T07", "denied", "wrong_channel")
    # The clerk terminal does reach its own services (here: asked to sign in first).
    e = await refused(clerk_calls(ch)["RequestCustomerCode"]())
    assert e.code() == Code.UNAUTHENTICATED
    e = await refused(staff_call(ch))
    assert e.code() == Code.UNAUTHENTICATED  # no such staff: the channel itself was admitted


@pytest.mark.parametrize(("cert", "channel", "terminal"), [
    (LEGAL, "legal", "B01/legal/L01"),
    (AUDIT, "audit", "B01/audit/A01"),
])
async def test_legal_and_audit_certificates_are_refused_the_kiosk_and_clerk_services(gw, cert, channel, terminal):
    ch = gw.channel_for(cert)
    e = await refused(kiosk_call(ch))
    assert e.code() == Code.PERMISSION_DENIED
    for name, call in clerk_calls(ch).items():
        e = await refused(call())
        assert e.code() == Code.PERMISSION_DENIED, name
    events = await gw.audit_events()
    assert len(events) == 1 + len(clerk_calls(ch))
    for ev in events:
        assert (ev["channel"], ev["terminal"], ev["decision"], ev["reason"]) == (
            channel, terminal, "denied", "wrong_channel")
    # Staff sign-in is open to them (and refuses an unknown staff id with the generic answer).
    e = await refused(staff_call(ch))
    assert e.code() == Code.UNAUTHENTICATED


# --- certificates that identify nobody ---------------------------------------------------------

async def test_a_certificate_from_another_ca_is_refused(gw):
    rogue = make_ca("rogue hall CA")
    leaf = issue(rogue, KIOSK, uri=f"spiffe://{TRUST_DOMAIN}/hall/H001/kiosk/K01")
    e = await refused(kiosk_call(channel_with(gw, leaf)))
    # The TLS handshake fails, so no call ever reaches the gateway's code.
    assert e.code() == Code.UNAVAILABLE
    assert await gw.audit_events() == []
    assert (await gw.messages(ORDINARY)) == []


async def test_an_expired_certificate_is_refused(gw):
    now = datetime.now(UTC)
    leaf = issue(hall_ca(gw), KIOSK, uri=f"spiffe://{TRUST_DOMAIN}/hall/H001/kiosk/K01",
                 not_before=now - timedelta(days=30), not_after=now - timedelta(days=1))
    e = await refused(kiosk_call(channel_with(gw, leaf)))
    assert e.code() == Code.UNAVAILABLE
    assert await gw.audit_events() == []
    assert (await gw.messages(ORDINARY)) == []


async def test_a_certificate_not_yet_valid_is_refused(gw):
    now = datetime.now(UTC)
    leaf = issue(hall_ca(gw), KIOSK, uri=f"spiffe://{TRUST_DOMAIN}/hall/H001/kiosk/K01",
                 not_before=now + timedelta(days=1), not_after=now + timedelta(days=30))
    e = await refused(kiosk_call(channel_with(gw, leaf)))
    assert e.code() == Code.UNAVAILABLE
    assert await gw.audit_events() == []


BAD_URIS = [
    pytest.param("spiffe://other.test/hall/H001/kiosk/K01", id="foreign-trust-domain"),
    pytest.param("spiffe://hallgate.test.evil/hall/H001/kiosk/K01", id="trust-domain-suffix"),
    pytest.param("spiffe://hallgate.test/hall/H001/kiosk", id="no-terminal"),
    pytest.param("spiffe://hallgate.test/hall/H001/kiosk/K01/extra", id="trailing-segment"),
    pytest.param("spiffe://hallgate.test/branch/H001/kiosk/K01", id="kiosk-at-a-branch"),
    pytest.param("spiffe://hallgate.test/hall/B01/legal/L01", id="legal-at-a-hall"),
    pytest.param("spiffe://hallgate.test/hall/H001/admin/K01", id="unknown-channel"),
    pytest.param("spiffe://hallgate.test/hall/../kiosk/K01", id="dot-dot"),
    pytest.param("https://hallgate.test/hall/H001/kiosk/K01", id="not-spiffe"),
    pytest.param(None, id="no-uri-san"),
]


@pytest.mark.parametrize("uri", BAD_URIS)
async def test_a_certificate_without_a_valid_spiffe_id_is_unauthenticated_and_audited(gw, uri):
    leaf = issue(hall_ca(gw), "odd-terminal", uri=uri)
    ch = channel_with(gw, leaf)
    for call, suffix in ((kiosk_call(ch), "RequestOneTimeCode"), (staff_call(ch), "SignIn"),
                         (clerk_calls(ch)["GetCustomerProfile"](), "GetCustomerProfile")):
        e = await refused(call)
        assert e.code() == Code.UNAUTHENTICATED, suffix
        assert details(e)["ErrorInfo"].reason == "NO_IDENTITY"
        ev = await last_event(gw, suffix)
        assert (ev["channel"], ev["terminal"], ev["decision"], ev["reason"], ev["code"]) == (
            "unidentified", "", "denied", "no_identity", "UNAUTHENTICATED")
    assert (await gw.messages(ORDINARY)) == []


async def test_a_fresh_certificate_from_the_hall_ca_with_a_good_spiffe_id_works(gw):
    """The control for the refusals above: the same issuing path with a valid URI is accepted."""
    leaf = issue(hall_ca(gw), "kiosk-new", uri=f"spiffe://{TRUST_DOMAIN}/hall/H009/kiosk/K42")
    assert await kiosk_call(channel_with(gw, leaf)) is not None
    ev = await last_event(gw, "RequestOneTimeCode")
    assert (ev["channel"], ev["hall"], ev["terminal"], ev["decision"]) == ("kiosk", "H009", "H009/kiosk/K42", "allowed")


# --- revocation without restart --------------------------------------------------------------------

@pytest.mark.parametrize("by", ["terminal", "serial"])
async def test_revoking_a_terminal_takes_effect_without_restart_and_removal_restores_it(make_gateway, by):
    gw = await make_gateway(send_min_interval=0.01)
    ch = gw.channel_for(KIOSK)
    other = gw.channel_for(KIOSK2)
    assert await outcome(kiosk_call(ch)) == Code.OK
    entry = "H001/kiosk/K01" if by == "terminal" else f"serial:{serial_of((gw.pki / f'{KIOSK}.crt').read_bytes())}"
    await gw.deps.revocations.add(entry)

    async def is_refused() -> bool:
        return await outcome(kiosk_call(ch)) == Code.UNAUTHENTICATED

    await wait_for(is_refused, limit=3.0, what="the revocation")
    e = await refused(kiosk_call(ch))
    assert details(e)["ErrorInfo"].reason == "REVOKED_TERMINAL"
    ev = await last_event(gw, "RequestOneTimeCode")
    assert (ev["channel"], ev["terminal"], ev["decision"], ev["reason"]) == (
        "kiosk", "H001/kiosk/K01", "denied", "revoked_terminal")
    # Every service is refused to it, and other terminals are not affected.
    assert await outcome(staff_call(ch)) == Code.UNAUTHENTICATED
    assert await outcome(kiosk_call(other)) != Code.UNAUTHENTICATED
    await gw.deps.revocations.remove(entry)

    async def is_restored() -> bool:
        return await outcome(kiosk_call(ch)) != Code.UNAUTHENTICATED

    await wait_for(is_restored, limit=3.0, what="the removal")


async def test_revoking_a_clerk_terminal_cuts_off_its_signed_in_staff(gw):
    secret = await gw.add_staff("C1001", "clerk")
    md = await gw.staff_sign_in(CLERK, "C1001", secret)
    ch = gw.channel_for(CLERK)
    stub = clerk_pb2_grpc.ClerkServiceStub(ch)
    request = clerk_pb2.RequestCustomerCodeRequest(msisdn=ORDINARY)
    await stub.RequestCustomerCode(request, metadata=md)
    await gw.deps.revocations.add("H001/clerk/T07")

    async def is_refused() -> bool:
        return await outcome(stub.RequestCustomerCode(request, metadata=md)) == Code.UNAUTHENTICATED

    await wait_for(is_refused, limit=3.0, what="the revocation")
    ev = await last_event(gw, "RequestCustomerCode")
    assert ev["reason"] == "revoked_terminal" and ev["terminal"] == "H001/clerk/T07"


# --- plaintext only in development mode on loopback -------------------------------------------------

def test_plaintext_is_refused_outside_development_mode():
    with pytest.raises(RuntimeError, match="plaintext"):
        server_credentials(Settings(listen="127.0.0.1:0", insecure_dev=False))


@pytest.mark.parametrize("listen", ["0.0.0.0:50051", "[::]:50051", "10.1.2.3:50051", "hall-gw.internal:50051",
                                    ":50051"])
def test_plaintext_development_mode_is_refused_on_a_non_loopback_address(listen):
    with pytest.raises(RuntimeError, match="plaintext"):
        server_credentials(Settings(listen=listen, insecure_dev=True))


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "localhost:50051", "[::1]:50051"])
def test_plaintext_development_mode_is_allowed_on_loopback(listen):
    assert server_credentials(Settings(listen=listen, insecure_dev=True)) is None


async def test_development_mode_takes_identity_from_the_dev_header_only(make_gateway):
    gw = await make_gateway(tls_cert="", tls_key="", tls_client_ca="", insecure_dev=True)
    stub = kiosk_pb2_grpc.KioskServiceStub(gw.channel)
    request = kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY)
    e = await refused(stub.RequestOneTimeCode(request))
    assert e.code() == Code.UNAUTHENTICATED
    ev = await last_event(gw, "RequestOneTimeCode")
    assert (ev["channel"], ev["decision"], ev["reason"]) == ("unidentified", "denied", "no_identity")
    kiosk_id = (("x-hallgate-dev-identity", f"spiffe://{TRUST_DOMAIN}/hall/H001/kiosk/K01"),)
    assert await stub.RequestOneTimeCode(request, metadata=kiosk_id) is not None
    ev = await last_event(gw, "RequestOneTimeCode")
    assert (ev["channel"], ev["terminal"], ev["decision"]) == ("kiosk", "H001/kiosk/K01", "allowed")
    # The header is held to the same rules as a certificate: trust domain, and channel per service.
    foreign = (("x-hallgate-dev-identity", "spiffe://other.test/hall/H001/kiosk/K01"),)
    assert (await refused(stub.RequestOneTimeCode(request, metadata=foreign))).code() == Code.UNAUTHENTICATED
    clerk_id = (("x-hallgate-dev-identity", f"spiffe://{TRUST_DOMAIN}/hall/H001/clerk/T07"),)
    assert (await refused(stub.RequestOneTimeCode(request, metadata=clerk_id))).code() == Code.PERMISSION_DENIED


async def test_the_dev_header_is_ignored_under_mutual_tls(gw):
    """A legal terminal cannot pose as a kiosk by adding the development header."""
    stub = kiosk_pb2_grpc.KioskServiceStub(gw.channel_for(LEGAL))
    kiosk_id = (("x-hallgate-dev-identity", f"spiffe://{TRUST_DOMAIN}/hall/H001/kiosk/K01"),)
    e = await refused(stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY),
                                              metadata=kiosk_id))
    assert e.code() == Code.PERMISSION_DENIED
    ev = await last_event(gw, "RequestOneTimeCode")
    assert ev["channel"] == "legal"


async def test_a_certificate_without_identity_is_not_rescued_by_the_dev_header(make_gateway):
    gw = await make_gateway(insecure_dev=True)  # TLS configured: the header must not count
    leaf = issue(hall_ca(gw), "no-uri")
    stub = kiosk_pb2_grpc.KioskServiceStub(channel_with(gw, leaf))
    kiosk_id = (("x-hallgate-dev-identity", f"spiffe://{TRUST_DOMAIN}/hall/H001/kiosk/K01"),)
    e = await refused(stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY),
                                              metadata=kiosk_id))
    assert e.code() == Code.UNAUTHENTICATED
