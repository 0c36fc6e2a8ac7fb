"""The clerk channel (R2, R4, R7, R9) end to end over mutual TLS: customer sessions the customer
opened and proved, the ID-document checks, password + code at the counter, the service password
reset, the masked profile, and no way to reach call details."""

from __future__ import annotations

import asyncio
import itertools
import time
from zoneinfo import ZoneInfo

import grpc
import pytest
import structlog
from google.protobuf.descriptor import Descriptor

from gateway.cli.main import main as cli_main
from gateway.domain import passwords, rules
from gateway.runtime.bootstrap import sms_worker
from hallgate_pb.v1 import clerk_pb2, clerk_pb2_grpc, kiosk_pb2, staff_pb2, staff_pb2_grpc
from tests.support.clerk import id_card
from tests.support.staff import STAFF_PASSWORD, next_totp, sign_in
from tests.support.status import details, reason, refused, shape, violations
from tests.support.subscribers import UNKNOWN
from tests.support.waiting import wait_for

Code = grpc.StatusCode
T07, T08, H002 = "clerk-H001-T07", "clerk-H001-T08", "clerk-H002-T01"
MADE_UP = "A" * 43
# The purpose the helpers open sessions for unless told (tests/e2e/test_session_purpose.py tests the others).
PASSWORD_RESET = clerk_pb2.SESSION_PURPOSE_PASSWORD_RESET

# Numbers of this file's own, so that password resets never touch numbers other tests use. Every
# reset is undone at teardown (the billing simulator's data lives for the whole session).
CUSTOMER = "13800000121"
NEIGHBOUR = "13800000122"  # another subscriber, whose genuine ID card is used as a wrong one
RESET = "13800000131"


@pytest.fixture(autouse=True)
def restore_service_passwords(billing_data):
    yield
    for msisdn in (CUSTOMER, NEIGHBOUR, RESET):
        billing_data.set_password(msisdn, billing_data.password_for(msisdn))


# --- helpers -------------------------------------------------------------------------------------

class Counter:
    """A clerk signed in on a clerk terminal."""

    def __init__(self, gw, cert: str, md) -> None:
        self.gw = gw
        self.md = md
        self.stub = clerk_pb2_grpc.ClerkServiceStub(gw.channel_for(cert))

    async def open_by_id(self, msisdn: str, doc: clerk_pb2.IdDocumentProof | None = None,
                         purpose: int = PASSWORD_RESET, reason: str = "") -> str:
        doc = doc or id_card(self.gw.billing.owner_of(msisdn))
        reply = await self.stub.OpenCustomerSession(clerk_pb2.OpenCustomerSessionRequest(
            msisdn=msisdn, id_document=doc, purpose=purpose, reason=reason), metadata=self.md)
        return str(reply.customer_session)

    async def request_code(self, msisdn: str) -> str:
        await self.stub.RequestCustomerCode(clerk_pb2.RequestCustomerCodeRequest(msisdn=msisdn), metadata=self.md)
        return await self.gw.last_code(msisdn)

    async def open_by_password(self, msisdn: str, password: str | None = None, code: str | None = None,
                               purpose: int = PASSWORD_RESET) -> str:
        code = code or await self.request_code(msisdn)
        reply = await self.stub.OpenCustomerSession(clerk_pb2.OpenCustomerSessionRequest(
            msisdn=msisdn, password_and_code=clerk_pb2.PasswordAndCodeProof(
                service_password=password or self.gw.billing.password_for(msisdn), one_time_code=code),
            purpose=purpose), metadata=self.md)
        return str(reply.customer_session)

    def profile(self, session: str, md=None):
        return self.stub.GetCustomerProfile(clerk_pb2.GetCustomerProfileRequest(customer_session=session),
                                            metadata=self.md if md is None else md)

    def reset(self, session: str, new: str, md=None):
        return self.stub.ResetServicePassword(clerk_pb2.ResetServicePasswordRequest(
            customer_session=session, new_service_password=new), metadata=self.md if md is None else md)

    def close(self, session: str, md=None):
        return self.stub.CloseCustomerSession(clerk_pb2.CloseCustomerSessionRequest(customer_session=session),
                                              metadata=self.md if md is None else md)

    def code_delivery(self, session: str, md=None):
        return self.stub.GetCodeDelivery(clerk_pb2.GetCodeDeliveryRequest(customer_session=session),
                                         metadata=self.md if md is None else md)


async def counter(gw, staff_id: str = "C1001", cert: str = T07, role: str = "clerk", hall: str = "H001",
                  secret: str | None = None) -> Counter:
    secret = secret or await gw.add_staff(staff_id, role, hall=hall)
    return Counter(gw, cert, await gw.staff_sign_in(cert, staff_id, secret))


def wrong(secret: str) -> str:
    return f"{(int(secret) + 1) % 1_000_000:06d}"


def good_new_password(gw, msisdn: str) -> str:
    """A 6-digit password no rule refuses for this owner and unlike the current one."""
    owner = gw.billing.owner_of(msisdn)
    for candidate in ("480273", "593817", "706294", "815360", "927451"):
        if candidate != gw.billing.password_for(msisdn) and passwords.trivial_service_password(
                candidate, birth_date=owner.birth_date, document_number=owner.document_number, msisdn=msisdn) is None:
            return candidate
    raise AssertionError("no candidate password")


async def kiosk_sign_in(gw, msisdn: str, password: str) -> kiosk_pb2.AuthenticateResponse:
    code = await gw.request_code(msisdn)
    return await gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
        msisdn=msisdn, service_password=password, one_time_code=code))


def kiosk_auth(gw, msisdn: str, password: str, code: str = "000000"):
    return gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
        msisdn=msisdn, service_password=password, one_time_code=code))


async def skip_resend_wait(gw, msisdn: str) -> None:
    await gw.redis.delete(f"hg:{{{msisdn}}}:send:last")


# --- a signed-in clerk is required for everything ------------------------------------------------

async def test_every_clerk_rpc_needs_a_signed_in_clerk(gw):
    clerk = await counter(gw)
    session = await clerk.open_by_id(CUSTOMER)  # a valid customer session does not stand in for a clerk
    doc = id_card(gw.billing.owner_of(CUSTOMER))
    calls = {
        "RequestCustomerCode": lambda md: clerk.stub.RequestCustomerCode(
            clerk_pb2.RequestCustomerCodeRequest(msisdn=CUSTOMER), metadata=md),
        "OpenCustomerSession": lambda md: clerk.stub.OpenCustomerSession(
            clerk_pb2.OpenCustomerSessionRequest(msisdn=CUSTOMER, id_document=doc, purpose=PASSWORD_RESET),
            metadata=md),
        "GetCustomerProfile": lambda md: clerk.profile(session, md),
        "ResetServicePassword": lambda md: clerk.reset(session, good_new_password(gw, CUSTOMER), md),
        "CloseCustomerSession": lambda md: clerk.close(session, md),
        "GetCodeDelivery": lambda md: clerk.code_delivery(session, md),
    }
    for md in ((), (("authorization", f"Bearer {MADE_UP}"),)):
        for name, call in calls.items():
            e = await refused(call(md))
            assert e.code() == Code.UNAUTHENTICATED, name
            assert reason(e) == "staff_sign_in_required".upper()
    assert (await gw.messages(CUSTOMER)) == []
    assert gw.billing.verify(CUSTOMER, gw.billing.password_for(CUSTOMER))
    assert (await clerk.profile(session)).proved_by == "id_document"  # still open
    denied = [e for e in await gw.audit_events() if e["decision"] == "denied"]
    assert len(denied) == 2 * len(calls)
    assert all(e["channel"] == "clerk" and e["reason"] == "staff_sign_in_required" for e in denied)


async def test_a_hall_manager_serves_customers_like_a_clerk(gw):
    manager = await counter(gw, "M1001", role="hall_manager")
    session = await manager.open_by_id(CUSTOMER)
    assert (await manager.profile(session)).proved_by == "id_document"


# --- customer sessions: missing, made up, someone else's, expired, closed ---------------------------

SESSION_RPCS = ["GetCustomerProfile", "ResetServicePassword", "CloseCustomerSession", "GetCodeDelivery"]


def session_call(clerk: Counter, rpc: str, session: str, new_password: str):
    return {"GetCustomerProfile": lambda: clerk.profile(session),
            "ResetServicePassword": lambda: clerk.reset(session, new_password),
            "CloseCustomerSession": lambda: clerk.close(session),
            "GetCodeDelivery": lambda: clerk.code_delivery(session)}[rpc]()


@pytest.mark.parametrize("rpc", SESSION_RPCS)
async def test_customer_data_needs_a_customer_session(gw, rpc):
    clerk = await counter(gw)
    new = good_new_password(gw, CUSTOMER)
    e = await refused(session_call(clerk, rpc, "", new))
    assert e.code() == Code.INVALID_ARGUMENT and violations(e) == ["customer_session"]
    e = await refused(session_call(clerk, rpc, MADE_UP, new))
    assert e.code() == Code.PERMISSION_DENIED and reason(e) == "CUSTOMER_SESSION_REQUIRED"
    ev = (await gw.audit_events())[-1]
    assert (ev["staff_id"], ev["decision"], ev["reason"]) == ("C1001", "denied", "customer_session_required")


@pytest.mark.parametrize("rpc", SESSION_RPCS)
async def test_another_clerks_customer_session_is_refused(gw, rpc):
    alice = await counter(gw, "C1001", T07)
    bob = await counter(gw, "C1002", T08)
    carol_same_terminal = await counter(gw, "C1003", T07)
    secret = await gw.add_staff("C1004", "clerk", hall="H002")
    dave_other_hall = await counter(gw, "C1004", H002, hall="H002", secret=secret)
    session = await alice.open_by_id(CUSTOMER)
    new = good_new_password(gw, CUSTOMER)
    for other in (bob, carol_same_terminal, dave_other_hall):
        e = await refused(session_call(other, rpc, session, new))
        assert e.code() == Code.PERMISSION_DENIED
        assert reason(e) == "CUSTOMER_SESSION_REQUIRED"
    # Nothing happened to the customer, and the session is still Alice's.
    assert (await gw.messages(CUSTOMER)) == []
    assert gw.billing.verify(CUSTOMER, gw.billing.password_for(CUSTOMER))
    assert (await alice.profile(session)).proved_by == "id_document"


@pytest.mark.parametrize("rpc", SESSION_RPCS)
async def test_a_customer_session_is_bound_to_its_terminal_even_for_the_same_clerk(gw, rpc):
    secret = await gw.add_staff("C1001", "clerk")
    at_t07 = await counter(gw, "C1001", T07, secret=secret)
    at_t08 = await counter(gw, "C1001", T08, secret=secret)
    session = await at_t07.open_by_id(CUSTOMER)
    e = await refused(session_call(at_t08, rpc, session, good_new_password(gw, CUSTOMER)))
    assert e.code() == Code.PERMISSION_DENIED
    assert (await at_t07.profile(session)).proved_by == "id_document"


@pytest.mark.parametrize("rpc", SESSION_RPCS)
async def test_an_idle_customer_session_expires(make_gateway, rpc):
    gw = await make_gateway(customer_session_idle=1.5)
    clerk = await counter(gw)
    session = await clerk.open_by_id(CUSTOMER)
    for _ in range(5):  # use every 0.35 s keeps it alive past its 1.5 s idle timeout
        await asyncio.sleep(0.35)
        await clerk.profile(session)
    await asyncio.sleep(2.0)
    e = await refused(session_call(clerk, rpc, session, good_new_password(gw, CUSTOMER)))
    assert e.code() == Code.PERMISSION_DENIED
    assert gw.billing.verify(CUSTOMER, gw.billing.password_for(CUSTOMER))


async def test_a_closed_customer_session_is_dead(gw):
    clerk = await counter(gw)
    session = await clerk.open_by_id(CUSTOMER)
    await clerk.close(session)
    for rpc in SESSION_RPCS:
        e = await refused(session_call(clerk, rpc, session, good_new_password(gw, CUSTOMER)))
        assert e.code() == Code.PERMISSION_DENIED, rpc


async def test_a_customer_session_names_one_number_only(gw):
    """The session's number comes from the session, never from the request."""
    clerk = await counter(gw)
    session = await clerk.open_by_id(CUSTOMER)
    profile = await clerk.profile(session)
    assert profile.msisdn_masked == f"{CUSTOMER[:3]}****{CUSTOMER[-4:]}"
    assert "msisdn" not in clerk_pb2.GetCustomerProfileRequest.DESCRIPTOR.fields_by_name
    assert "msisdn" not in clerk_pb2.ResetServicePasswordRequest.DESCRIPTOR.fields_by_name


# --- opening by ID document (R4) -------------------------------------------------------------------

async def test_the_owners_id_card_opens_a_session_and_is_audited(gw):
    clerk = await counter(gw)
    session = await clerk.open_by_id(CUSTOMER)
    assert len(session) == 43
    events = await gw.audit_events()
    ev = [e for e in events if e["method"].endswith("OpenCustomerSession")][-1]
    assert (ev["decision"], ev["staff_id"], ev["terminal"], ev["proof"], ev["subscriber"]) == (
        "allowed", "C1001", "H001/clerk/T07", "id_document", "138****0121")


async def test_a_lowercase_x_check_character_is_read_as_x(gw, billing_data):
    msisdn = next(f"138{i:08d}" for i in range(200, 1200)
                  if billing_data.owner_of(f"138{i:08d}").document_number.endswith("X") and i % 100 not in (7, 8))
    owner = billing_data.owner_of(msisdn)
    clerk = await counter(gw)
    session = await clerk.open_by_id(msisdn, id_card(owner, document_number=owner.document_number.lower()))
    assert (await clerk.profile(session)).document_number_masked.endswith(owner.document_number[-4:])


def misread_check_character(number: str) -> str:
    other = "0" if number[-1] != "0" else "1"
    return number[:-1] + other


def flip_sex(sex: int) -> int:
    return clerk_pb2.DOCUMENT_SEX_MALE if sex == clerk_pb2.DOCUMENT_SEX_FEMALE else clerk_pb2.DOCUMENT_SEX_FEMALE


async def test_id_card_check_character_birth_date_and_sex_are_checked_before_billing(make_gateway):
    gw = await make_gateway(lock_threshold=2)
    clerk = await counter(gw)
    owner = gw.billing.owner_of(CUSTOMER)
    card = id_card(owner)
    day = int(owner.birth_date[-2:])
    other_day = f"{owner.birth_date[:-2]}{(day % 28) + 1:02d}"
    cases = {
        "id_document.document_number": id_card(owner, document_number=misread_check_character(
            owner.document_number)),
        "id_document.birth_date": id_card(owner, birth_date=other_day),
        "id_document.sex": id_card(owner, sex=flip_sex(card.sex)),
    }
    for field, doc in cases.items():
        e = await refused(clerk.open_by_id(CUSTOMER, doc))
        assert e.code() == Code.INVALID_ARGUMENT, field
        assert violations(e) == [field]
    # Misreads are field errors, not failed proofs: they do not count towards the lock.
    assert await clerk.open_by_id(CUSTOMER)


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("document_number", "44010619840201678", ["id_document.document_number"]),
    ("document_number", "44010619840201678Y", ["id_document.document_number"]),
    ("document_number", "", ["id_document.document_number"]),
    ("birth_date", "1984/02/01", ["id_document.birth_date"]),
    ("name", "", ["id_document.name"]),
    ("sex", clerk_pb2.DOCUMENT_SEX_UNSPECIFIED, ["id_document.sex"]),
    ("document_type", clerk_pb2.ID_DOCUMENT_TYPE_UNSPECIFIED, ["id_document.document_type"]),
])
async def test_malformed_id_card_fields_are_invalid_argument(gw, field, value, expected):
    clerk = await counter(gw)
    e = await refused(clerk.open_by_id(CUSTOMER, id_card(gw.billing.owner_of(CUSTOMER), **{field: value})))
    assert e.code() == Code.INVALID_ARGUMENT
    assert violations(e) == expected


async def test_open_without_a_proof_is_invalid_argument(gw):
    clerk = await counter(gw)
    e = await refused(clerk.stub.OpenCustomerSession(clerk_pb2.OpenCustomerSessionRequest(
        msisdn=CUSTOMER, purpose=PASSWORD_RESET), metadata=clerk.md))
    assert violations(e) == ["proof"]


async def test_a_genuine_id_card_of_someone_else_is_the_generic_refusal_and_counts_towards_a_lock(make_gateway):
    gw = await make_gateway(lock_threshold=3)
    clerk = await counter(gw)
    neighbours_card = id_card(gw.billing.owner_of(NEIGHBOUR))
    owner = gw.billing.owner_of(CUSTOMER)
    e_other = await refused(clerk.open_by_id(CUSTOMER, neighbours_card))
    e_name = await refused(clerk.open_by_id(CUSTOMER, id_card(owner, name=owner.name[:1] + "某某")))
    e_unknown = await refused(clerk.open_by_id(UNKNOWN, id_card(owner)))
    assert shape(e_other)[0] == Code.UNAUTHENTICATED
    assert shape(e_other) == shape(e_name) == shape(e_unknown)
    # The third failure for this number locks ID-card opening for it, even with the owner's own card.
    e = await refused(clerk.open_by_id(CUSTOMER, neighbours_card))
    assert e.code() == Code.RESOURCE_EXHAUSTED
    assert details(e)["RetryInfo"].retry_delay.seconds >= 1
    e = await refused(clerk.open_by_id(CUSTOMER))
    assert e.code() == Code.RESOURCE_EXHAUSTED
    # Other numbers are not locked.
    assert await clerk.open_by_id(NEIGHBOUR)
    ev = [e for e in await gw.audit_events() if e["method"].endswith("OpenCustomerSession")]
    assert [e["reason"] for e in ev[:5]] == ["bad_credentials", "bad_credentials", "bad_credentials", "locked_now",
                                             "locked"]


async def test_wrong_id_cards_at_the_counter_do_not_lock_the_owner_out_of_the_kiosk(make_gateway):
    """Document mismatches count towards a lock of their own (gateway/domain/clerk.py open_by_document)."""
    gw = await make_gateway(lock_threshold=2)
    clerk = await counter(gw)
    neighbours_card = id_card(gw.billing.owner_of(NEIGHBOUR))
    for _ in range(2):
        await refused(clerk.open_by_id(CUSTOMER, neighbours_card))
    assert (await kiosk_sign_in(gw, CUSTOMER, gw.billing.password_for(CUSTOMER))).access_token


async def test_the_owner_with_an_id_card_can_unlock_a_number_locked_at_the_kiosk(make_gateway):
    gw = await make_gateway(lock_threshold=2)
    password = gw.billing.password_for(RESET)
    for _ in range(2):
        await skip_resend_wait(gw, RESET)
        await refused(kiosk_sign_in(gw, RESET, wrong(password)))
    assert "locked" in (await gw.messages(RESET))[-1] and "Self-service" in (await gw.messages(RESET))[-1]
    clerk = await counter(gw)
    session = await clerk.open_by_id(RESET)
    new = good_new_password(gw, RESET)
    await clerk.reset(session, new)
    await skip_resend_wait(gw, RESET)
    assert (await kiosk_sign_in(gw, RESET, new)).access_token


# --- opening by service password + code (R9 way 1 at the counter) ----------------------------------

async def test_password_and_counter_code_open_a_session(gw):
    clerk = await counter(gw)
    session = await clerk.open_by_password(CUSTOMER)
    assert (await clerk.profile(session)).proved_by == "password_and_code"
    [text] = (await gw.messages(CUSTOMER))
    assert "service hall counter" in text and "call list" not in text


async def test_counter_and_kiosk_codes_are_bound_to_their_purpose(make_gateway):
    gw = await make_gateway(send_min_interval=0.01)
    clerk = await counter(gw)
    password = gw.billing.password_for(CUSTOMER)
    kiosk_code = await gw.request_code(CUSTOMER)
    await asyncio.sleep(0.02)
    counter_code = await clerk.request_code(CUSTOMER)
    kiosk_text, counter_text = (await gw.messages(CUSTOMER))
    assert kiosk_text.replace(kiosk_code, "#") != counter_text.replace(counter_code, "#")
    assert "call list" in kiosk_text and "counter" in counter_text
    e_at_counter = await refused(clerk.open_by_password(CUSTOMER, password, kiosk_code))
    e_at_kiosk = await refused(gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
        msisdn=CUSTOMER, service_password=password, one_time_code=counter_code)))
    assert e_at_counter.code() == e_at_kiosk.code() == Code.UNAUTHENTICATED
    # Each still works where it was meant to.
    assert await clerk.open_by_password(CUSTOMER, password, counter_code)
    assert (await gw.stub.Authenticate(kiosk_pb2.AuthenticateRequest(
        msisdn=CUSTOMER, service_password=password, one_time_code=kiosk_code))).access_token


async def test_wrong_password_or_code_at_the_counter_is_the_generic_refusal(make_gateway):
    gw = await make_gateway(send_min_interval=0.01)
    clerk = await counter(gw)
    password = gw.billing.password_for(CUSTOMER)
    code = await clerk.request_code(CUSTOMER)
    e_password = await refused(clerk.open_by_password(CUSTOMER, wrong(password), code))
    await asyncio.sleep(0.02)
    code = await clerk.request_code(CUSTOMER)
    e_code = await refused(clerk.open_by_password(CUSTOMER, password, wrong(code)))
    assert shape(e_password)[0] == Code.UNAUTHENTICATED
    assert shape(e_password) == shape(e_code)
    assert await clerk.open_by_password(CUSTOMER, password, code)


async def test_request_customer_code_answers_alike_for_any_number(gw):
    clerk = await counter(gw)
    answers = [await clerk.stub.RequestCustomerCode(clerk_pb2.RequestCustomerCodeRequest(msisdn=m),
                                                    metadata=clerk.md) for m in (CUSTOMER, UNKNOWN)]
    assert answers[0] == answers[1]
    assert (await gw.messages(UNKNOWN)) == []


# --- service password reset (R9 way 2) -------------------------------------------------------------

async def test_reset_needs_an_id_document_session(gw):
    clerk = await counter(gw)
    session = await clerk.open_by_password(RESET)
    e = await refused(clerk.reset(session, good_new_password(gw, RESET)))
    assert e.code() == Code.PERMISSION_DENIED
    assert reason(e) == "ID_DOCUMENT_REQUIRED"
    assert gw.billing.verify(RESET, gw.billing.password_for(RESET))
    assert len(await gw.messages(RESET)) == 1  # the code only


def trivial_passwords(gw, msisdn: str) -> dict[str, str]:
    owner = gw.billing.owner_of(msisdn)
    yymmdd = owner.birth_date.replace("-", "")[2:]
    digits = "".join(itertools.takewhile(str.isdigit, owner.document_number))
    return {
        "sequence": "123456",
        "descending sequence": "987654",
        "repeats": "111111",
        "two digits": "121212",
        "birth date YYMMDD": yymmdd,
        "six digits of the ID number": digits[11:17],
        "last six digits of the ID number": digits[-6:] if len(digits) == 18 else digits[10:16],
        "phone number tail": msisdn[-6:],
        "phone number inside": msisdn[4:10],
    }


async def test_reset_refuses_trivial_passwords(gw):
    clerk = await counter(gw)
    session = await clerk.open_by_id(RESET)
    for what, candidate in trivial_passwords(gw, RESET).items():
        e = await refused(clerk.reset(session, candidate))
        assert e.code() == Code.INVALID_ARGUMENT, what
        assert violations(e) == ["new_service_password"], what
    for bad in ("12345", "1234567", "abcdef", ""):
        e = await refused(clerk.reset(session, bad))
        assert violations(e) == ["new_service_password"], bad
    assert gw.billing.verify(RESET, gw.billing.password_for(RESET))
    assert (await gw.messages(RESET)) == []


async def test_reset_by_id_card_tells_the_owner_and_then_the_kiosk_works_with_the_new_password(make_gateway):
    gw = await make_gateway(send_min_interval=0.01)
    clerk = await counter(gw)
    old = gw.billing.password_for(RESET)
    new = good_new_password(gw, RESET)
    session = await clerk.open_by_id(RESET)
    reply = await clerk.reset(session, new)
    assert "kiosk" in reply.next_step and new not in reply.next_step
    [sms] = (await gw.messages(RESET))
    assert "H001" in sms and "reset" in sms
    assert new not in sms and old not in sms
    ev = (await gw.audit_events())[-1]
    assert (ev["method"].rsplit("/", 1)[1], ev["decision"], ev["proof"], ev["staff_id"]) == (
        "ResetServicePassword", "allowed", "id_document", "C1001")
    # The kiosk path: the new password and a code work, the old password does not.
    assert (await kiosk_sign_in(gw, RESET, new)).access_token
    await asyncio.sleep(0.02)
    e = await refused(kiosk_sign_in(gw, RESET, old))
    assert e.code() == Code.UNAUTHENTICATED


async def test_reset_sms_names_the_hall_of_the_counter(gw):
    secret = await gw.add_staff("C2001", "clerk", hall="H002")
    clerk = await counter(gw, "C2001", H002, hall="H002", secret=secret)
    session = await clerk.open_by_id(RESET)
    await clerk.reset(session, good_new_password(gw, RESET))
    [sms] = (await gw.messages(RESET))
    assert "H002" in sms and "H001" not in sms


async def test_reset_lifts_a_lock_that_fell_during_the_session(make_gateway):
    gw = await make_gateway(lock_threshold=2, send_min_interval=0.01)
    clerk = await counter(gw)
    session = await clerk.open_by_id(RESET)
    password = gw.billing.password_for(RESET)
    for _ in range(2):
        await skip_resend_wait(gw, RESET)
        await refused(kiosk_sign_in(gw, RESET, wrong(password)))
    assert (await refused(kiosk_auth(gw, RESET, password))).code() == Code.RESOURCE_EXHAUSTED
    new = good_new_password(gw, RESET)
    await clerk.reset(session, new)
    await skip_resend_wait(gw, RESET)
    assert (await kiosk_sign_in(gw, RESET, new)).access_token


# --- what a counter sees (R1, R7) -------------------------------------------------------------------

@pytest.mark.parametrize("proof", ["id_document", "password_and_code"])
async def test_the_profile_is_masked_and_holds_no_sim_data_on_the_wire(gw, proof):
    clerk = await counter(gw)
    owner = gw.billing.owner_of(CUSTOMER)
    session = await (clerk.open_by_id(CUSTOMER) if proof == "id_document" else clerk.open_by_password(CUSTOMER))
    with structlog.testing.capture_logs() as logs:
        profile = await clerk.profile(session)
    wire = profile.SerializeToString()
    for what, value in {"iccid": owner.iccid, "imsi": owner.imsi, "document number": owner.document_number,
                        "name": owner.name, "street": owner.street, "msisdn": CUSTOMER,
                        "birth date": owner.birth_date, "ID digits 1-14": owner.document_number[:14]}.items():
        assert value.encode() not in wire, what
    assert profile.document_number_masked == "*" * 14 + owner.document_number[-4:]
    assert profile.name_masked.startswith(owner.name[0]) and set(profile.name_masked[1:]) == {"*"}
    assert profile.msisdn_masked == "138****0121"
    assert owner.district in profile.address_district
    assert profile.proved_by == proof
    assert profile.plan_name == owner.plan_name and profile.account_status == owner.account_status
    # The response type has no field that could carry SIM data.
    names = {f.name for f in clerk_pb2.GetCustomerProfileResponse.DESCRIPTOR.fields}
    assert not {n for n in names if any(w in n for w in ("iccid", "imsi", "sim", "street", "birth"))}
    # Nor do the logs or the audit trail.
    logged = [str(line) for line in logs] + [str(e) for e in await gw.audit_events()]
    for value in (owner.iccid, owner.imsi, owner.document_number, owner.name, owner.street, CUSTOMER):
        assert not [line for line in logged if value in line]


async def test_no_secret_of_the_counter_reaches_logs_or_audit(make_gateway):
    gw = await make_gateway(send_min_interval=0.01)
    clerk = await counter(gw)
    password = gw.billing.password_for(RESET)
    new = good_new_password(gw, RESET)
    with structlog.testing.capture_logs() as logs:
        code = await clerk.request_code(RESET)
        by_password = await clerk.open_by_password(RESET, password, code)
        await clerk.close(by_password)
        by_id = await clerk.open_by_id(RESET)
        await refused(clerk.reset(by_id, "123456"))
        await clerk.reset(by_id, new)
        await clerk.close(by_id)
    logged = [str(line) for line in logs] + [str(e) for e in await gw.audit_events()]
    assert len(logs) >= 7
    token = clerk.md[0][1].removeprefix("Bearer ")
    for value in (password, new, code, by_password, by_id, token, RESET):
        assert not [line for line in logged if value in line], value


# --- did the last code reach the phone? (inside a customer session; no text, no code) -----------------

STATE = clerk_pb2.CodeDeliveryState


def seconds(t) -> float:
    return t.ToNanoseconds() / 1e9


async def delivery(clerk: Counter, session: str, state: int, queued_after: float = 0.0, limit: float = 10.0):
    """The clerk's answer once it says `state` for a code queued after `queued_after` (bounded wait)."""
    found = []

    async def there() -> bool:
        found[:] = [await clerk.code_delivery(session)]
        return found[0].state == state and seconds(found[0].queued_at) > queued_after

    await wait_for(there, limit, what=f"the code delivery to read {STATE.Name(state)}")
    return found[0]


async def test_the_clerk_sees_whether_the_last_code_reached_the_phone_and_never_the_code(gw):
    clerk = await counter(gw)
    session = await clerk.open_by_id(CUSTOMER)
    none = await clerk.code_delivery(session)
    assert none.state == clerk_pb2.CODE_DELIVERY_STATE_NONE
    assert not none.HasField("queued_at") and not none.HasField("updated_at")
    before = time.time()
    with structlog.testing.capture_logs() as logs:
        code = await clerk.request_code(CUSTOMER)  # waits until the dispatcher handed it to the phone
        answer = await delivery(clerk, session, clerk_pb2.CODE_DELIVERY_STATE_DELIVERED)
    assert before - 1 <= seconds(answer.queued_at) <= seconds(answer.updated_at) <= time.time() + 1
    # No text, no code, no SMSC id: on the wire, in the type, in the logs, in the audit trail.
    [text] = await gw.messages(CUSTOMER)
    assert code in text
    assert {f.name for f in clerk_pb2.GetCodeDeliveryResponse.DESCRIPTOR.fields} == {"state", "queued_at",
                                                                                     "updated_at"}
    wire = answer.SerializeToString()
    assert code.encode() not in wire and CUSTOMER.encode() not in wire
    events = await gw.audit_events()
    logged = [str(line) for line in logs] + [str(e) for e in events]
    assert not [line for line in logged if code in line or CUSTOMER in line]
    # Each look is audited, as the clerk's, in this customer's session.
    looks = [e for e in events if e["method"] == "/hallgate.v1.ClerkService/GetCodeDelivery"]
    assert len(looks) >= 2
    assert {(e["decision"], e["staff_id"], e["terminal"], e["proof"], e["subscriber"]) for e in looks} == {
        ("allowed", "C1001", "H001/clerk/T07", "id_document", "138****0121")}


async def test_the_newest_code_of_either_purpose_counts_and_only_for_the_sessions_number(make_gateway):
    gw = await make_gateway(send_min_interval=0.01)
    clerk = await counter(gw)
    session = await clerk.open_by_id(CUSTOMER)
    await gw.request_code(NEIGHBOUR)  # another number's code is not this customer's
    assert (await clerk.code_delivery(session)).state == clerk_pb2.CODE_DELIVERY_STATE_NONE
    await gw.request_code(CUSTOMER)  # at a kiosk
    kiosk = await delivery(clerk, session, clerk_pb2.CODE_DELIVERY_STATE_DELIVERED)
    await asyncio.sleep(0.02)
    await clerk.request_code(CUSTOMER)  # at the counter
    at_counter = await delivery(clerk, session, clerk_pb2.CODE_DELIVERY_STATE_DELIVERED,
                                queued_after=seconds(kiosk.queued_at))
    assert seconds(at_counter.queued_at) > seconds(kiosk.queued_at)
    # A session opened by password + code reads the code that opened it, like any other.
    by_password = await clerk.open_by_password(RESET)
    assert (await clerk.code_delivery(by_password)).state == clerk_pb2.CODE_DELIVERY_STATE_DELIVERED


async def test_a_notice_is_not_a_code(gw):
    clerk = await counter(gw)
    session = await clerk.open_by_id(RESET)
    await clerk.reset(session, good_new_password(gw, RESET))
    assert len(await gw.messages(RESET)) == 1  # the reset notice
    assert (await clerk.code_delivery(session)).state == clerk_pb2.CODE_DELIVERY_STATE_NONE


async def test_a_code_no_dispatcher_took_yet_is_queued_and_one_that_expired_unsent_is_expired(make_gateway):
    gw = await make_gateway(sms_dispatchers=0, code_ttl=1)
    clerk = await counter(gw)
    session = await clerk.open_by_id(CUSTOMER)
    await clerk.stub.RequestCustomerCode(clerk_pb2.RequestCustomerCodeRequest(msisdn=CUSTOMER), metadata=clerk.md)
    queued = await delivery(clerk, session, clerk_pb2.CODE_DELIVERY_STATE_QUEUED)
    await asyncio.sleep(max(0.0, seconds(queued.queued_at) + 1.2 - time.time()))  # the code is past its expiry
    worker = sms_worker(gw.settings.with_(sms_dispatchers=1), gw.deps)
    worker.start()
    gw.closers.insert(0, worker.stop)
    expired = await delivery(clerk, session, clerk_pb2.CODE_DELIVERY_STATE_EXPIRED)
    assert seconds(expired.queued_at) == seconds(queued.queued_at) < seconds(expired.updated_at)


async def test_the_owner_sees_the_check_in_their_access_history(make_gateway):
    """Like a profile view, the check is a look at the customer's data at a counter (R10): the owner
    sees it at a kiosk (gateway/domain/kiosk.py HISTORY_WORDS), without staff ids."""
    gw = await make_gateway(send_min_interval=0.01)
    clerk = await counter(gw)
    session = await clerk.open_by_id(CUSTOMER)
    await clerk.code_delivery(session)
    token = await gw.sign_in(CUSTOMER)
    history = [m.record async for m in gw.stub.ListAccessHistory(kiosk_pb2.ListAccessHistoryRequest(
        access_token=token))]
    checks = [r for r in history if r.what == "code SMS delivery checked at a service hall counter"]
    assert [(r.hall, r.channel, r.outcome) for r in checks] == [("H001", "clerk", "allowed")]
    assert not [r for r in history if "C1001" in str(r)]


def printed(capsys) -> list[list[str]]:
    """What the CLI printed (the server's log lines, captured alongside, left out)."""
    words = [line.split() for line in capsys.readouterr().out.splitlines()]
    return [w for w in words if w and w[0] in ("state", "queued_at", "updated_at")]


async def test_the_cli_prints_the_state_and_times(gw, capsys):
    clerk = await counter(gw)
    session = await clerk.open_by_id(CUSTOMER)
    argv = ["clerk", "--target", f"127.0.0.1:{gw.port}", "--data-dir", str(gw.pki.parent), "--cert", T07,
            "--staff-token", clerk.md[0][1].removeprefix("Bearer "), "code-delivery", "--session", session,
            "--timezone", "Asia/Shanghai"]
    assert await asyncio.to_thread(cli_main, argv) == 0  # the CLI's blocking gRPC, off the server's loop
    assert printed(capsys) == [["state", "none"]]
    code = await clerk.request_code(CUSTOMER)
    answer = await delivery(clerk, session, clerk_pb2.CODE_DELIVERY_STATE_DELIVERED)
    assert await asyncio.to_thread(cli_main, argv) == 0
    shown = printed(capsys)
    zone = ZoneInfo("Asia/Shanghai")
    assert shown == [["state", "delivered"],
                     ["queued_at", *f"{answer.queued_at.ToDatetime(tzinfo=zone):%Y-%m-%d %H:%M:%S %Z}".split()],
                     ["updated_at", *f"{answer.updated_at.ToDatetime(tzinfo=zone):%Y-%m-%d %H:%M:%S %Z}".split()]]
    assert shown[1][-1] == "CST" and code not in str(shown)


async def test_the_code_delivery_is_not_for_kiosks(gw):
    clerk = await counter(gw)
    session = await clerk.open_by_id(CUSTOMER)
    from_kiosk = clerk_pb2_grpc.ClerkServiceStub(gw.channel)  # the kiosk certificate, a genuine session
    e = await refused(from_kiosk.GetCodeDelivery(clerk_pb2.GetCodeDeliveryRequest(customer_session=session),
                                                 metadata=clerk.md))
    assert e.code() == Code.PERMISSION_DENIED and reason(e) == "WRONG_CHANNEL"
    ev = (await gw.audit_events())[-1]
    assert (ev["method"], ev["channel"], ev["decision"], ev["reason"]) == (
        "/hallgate.v1.ClerkService/GetCodeDelivery", "kiosk", "denied", "wrong_channel")


# --- no call lists at the counter (R9) --------------------------------------------------------------

def message_types(descriptor: Descriptor, seen: set[str] | None = None) -> set[str]:
    """Every message type reachable from `descriptor` through its fields."""
    seen = set() if seen is None else seen
    if descriptor.full_name in seen:
        return seen
    seen.add(descriptor.full_name)
    for field in descriptor.fields:
        if field.message_type is not None:
            message_types(field.message_type, seen)
    return seen


def test_no_clerk_rpc_can_return_call_details():
    service = clerk_pb2.DESCRIPTOR.services_by_name["ClerkService"]
    assert len(service.methods) == 6
    call_detail = kiosk_pb2.CallDetail.DESCRIPTOR.full_name
    for method in service.methods:
        reachable = message_types(method.output_type)
        assert call_detail not in reachable, method.name
        assert not [t for t in reachable if "CallDetail" in t or "Cdr" in t], method.name
        assert not method.server_streaming, method.name


def test_no_clerk_rpc_takes_a_number_and_returns_customer_data_without_a_session():
    """Only the two calls that open a session take a number; every other names a customer session."""
    service = clerk_pb2.DESCRIPTOR.services_by_name["ClerkService"]
    takes_number = {m.name for m in service.methods if "msisdn" in m.input_type.fields_by_name}
    assert takes_number == {"RequestCustomerCode", "OpenCustomerSession"}
    for method in service.methods:
        if method.name not in takes_number:
            assert "customer_session" in method.input_type.fields_by_name, method.name


async def test_a_customer_session_ends_with_the_clerks_sign_in_that_opened_it(gw):
    """A clerk who signs out leaves no customer session behind, not for their next sign-in on the
    terminal either. Another clerk's sessions, and the same clerk's on another terminal, stay."""
    secret = await gw.add_staff("C1001", "clerk")

    async def c1001(cert: str) -> Counter:  # three sign-ins in one TOTP step: the previous, this and the next
        reply = await sign_in(gw, cert, "C1001", STAFF_PASSWORD, next_totp(secret))
        return Counter(gw, cert, (("authorization", f"Bearer {reply.staff_token}"),))

    at_t07, at_t08 = await c1001(T07), await c1001(T08)
    carol = await counter(gw, "C1003", T07)
    mine = [await at_t07.open_by_id(CUSTOMER), await at_t07.open_by_password(CUSTOMER)]
    elsewhere, carols = await at_t08.open_by_id(CUSTOMER), await carol.open_by_id(CUSTOMER)
    await staff_pb2_grpc.StaffServiceStub(gw.channel_for(T07)).SignOut(staff_pb2.SignOutRequest(), metadata=at_t07.md)
    again = await c1001(T07)
    for session in mine:
        e = await refused(again.profile(session))
        assert e.code() == Code.PERMISSION_DENIED and reason(e) == "CUSTOMER_SESSION_REQUIRED"
    assert (await at_t08.profile(elsewhere)).proved_by == "id_document"
    assert (await carol.profile(carols)).proved_by == "id_document"


async def test_a_fresh_sign_in_does_not_take_over_the_customer_sessions_of_an_earlier_one(gw):
    """Two sign-ins of one clerk on one terminal are two sessions: each serves only the customers it
    identified itself, so a sign-in left open on a counter lends its customers to nobody."""
    secret = await gw.add_staff("C1005", "clerk")
    first = await counter(gw, "C1005", secret=secret)
    session = await first.open_by_id(CUSTOMER)
    second = await counter(gw, "C1005", secret=secret)
    e = await refused(second.profile(session))
    assert e.code() == Code.PERMISSION_DENIED and reason(e) == "CUSTOMER_SESSION_REQUIRED"
    assert (await first.profile(session)).proved_by == "id_document"
    # A session stored by a gateway from before sign-in binding (a rolling upgrade) has no sign-in to
    # match, and stays bound to the clerk and the terminal, as it was.
    await gw.redis.hdel(f"hg:customer-session:{rules.token_digest(session)}", "staff_session")
    assert (await second.profile(session)).proved_by == "id_document"

