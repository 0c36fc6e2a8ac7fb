"""The policy table (gateway/domain/policy.py) against the proto descriptors: every RPC of every
hallgate.v1 service has exactly one row, no row names a method that does not exist, and the rows
keep the channels apart (R2, R5, R9)."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import hallgate_pb.v1
from gateway.domain.identity import Channel
from gateway.domain.policy import ANY_PURPOSE, POLICY, SIGN_IN_CHANNELS, Proof, Role
from gateway.domain.purposes import SessionPurpose


def pb2_modules() -> list[ModuleType]:
    names = sorted(m.name for m in pkgutil.iter_modules(hallgate_pb.v1.__path__) if m.name.endswith("_pb2"))
    return [importlib.import_module(f"hallgate_pb.v1.{name}") for name in names]


def rpcs_by_service() -> dict[str, dict[str, object]]:
    """Every hallgate.v1 service: full method name → method descriptor."""
    found: dict[str, dict[str, object]] = {}
    for module in pb2_modules():
        for service in module.DESCRIPTOR.services_by_name.values():
            assert service.full_name.startswith("hallgate.v1.")
            found[service.name] = {f"/{service.full_name}/{m.name}": m for m in service.methods}
    return found


SERVICES = rpcs_by_service()
ALL_RPCS = {name: m for methods in SERVICES.values() for name, m in methods.items()}


def test_the_descriptors_are_found():
    assert {"KioskService", "StaffService", "ClerkService", "LegalService", "AuditService"} <= set(SERVICES)
    assert len(ALL_RPCS) >= 24


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_rpc_has_a_policy_row(service):
    """No exceptions: a service whose rows are not written yet fails here, whatever its state."""
    missing = sorted(set(SERVICES[service]) - set(POLICY))
    assert not missing, f"RPCs without a policy row (deny by default, but the table must say so): {missing}"


def test_no_row_for_a_method_that_does_not_exist():
    assert sorted(set(POLICY) - set(ALL_RPCS)) == []


def test_every_row_names_channels_and_known_roles():
    for method, rule in POLICY.items():
        assert rule.channels, method
        assert rule.channels <= set(Channel), method
        assert rule.roles <= set(Role), method
        assert rule.proof in set(Proof), method


@pytest.mark.parametrize("method", sorted(m for m, r in POLICY.items()
                                          if r.proof in (Proof.CUSTOMER_SESSION, Proof.ID_DOCUMENT_SESSION)))
def test_customer_session_rows_have_a_customer_session_field(method):
    request = ALL_RPCS[method].input_type
    field = request.fields_by_name.get("customer_session")
    assert field is not None, f"{method}: {request.full_name} has no customer_session field"
    assert field.type == field.TYPE_STRING and not field.is_repeated
    rule = POLICY[method]
    assert rule.channels == {Channel.CLERK}, "customer sessions exist on the clerk channel only"
    assert rule.roles, "a customer session belongs to a signed-in clerk"


def test_kiosk_rows_are_the_kiosk_and_the_website_only_and_need_no_staff():
    rows = {m: r for m, r in POLICY.items() if m.startswith("/hallgate.v1.KioskService/")}
    assert set(rows) == set(SERVICES["KioskService"])
    for method, rule in rows.items():
        assert rule.channels == {Channel.KIOSK, Channel.WEB}, method  # R9: a kiosk or the website
        assert not rule.roles, method
    # What costs an SMS or tests a password needs the website's bot challenge and tighter limit.
    assert {m.rsplit("/", 1)[1] for m, r in rows.items() if r.bot_check} == {"RequestOneTimeCode", "Authenticate"}


def test_no_other_service_admits_the_kiosk_channel_or_the_website():
    for method, rule in POLICY.items():
        if not method.startswith("/hallgate.v1.KioskService/"):
            assert Channel.KIOSK not in rule.channels, method
            assert Channel.WEB not in rule.channels, method
            assert not rule.bot_check, method


def test_clerk_rows_admit_the_clerk_channel_only_and_counter_roles_only():
    rows = {m: r for m, r in POLICY.items() if m.startswith("/hallgate.v1.ClerkService/")}
    assert set(rows) == set(SERVICES["ClerkService"])
    for method, rule in rows.items():
        assert rule.channels == {Channel.CLERK}, method
        assert not rule.channels & {Channel.KIOSK, Channel.LEGAL, Channel.AUDIT}, method
        assert rule.roles and rule.roles <= {Role.CLERK, Role.HALL_MANAGER}, method


def test_clerk_rows_that_touch_customer_data_need_a_customer_proof():
    for name in ("GetCustomerProfile", "ResetServicePassword", "CloseCustomerSession", "GetCodeDelivery"):
        assert POLICY[f"/hallgate.v1.ClerkService/{name}"].proof != Proof.NONE, name
    assert POLICY["/hallgate.v1.ClerkService/ResetServicePassword"].proof == Proof.ID_DOCUMENT_SESSION


def test_every_clerk_rpc_that_does_not_open_a_session_needs_one():
    """R2/R9: the only clerk calls without a customer proof are the two that establish it."""
    open_ = {"/hallgate.v1.ClerkService/RequestCustomerCode", "/hallgate.v1.ClerkService/OpenCustomerSession"}
    for method, rule in POLICY.items():
        if method.startswith("/hallgate.v1.ClerkService/") and method not in open_:
            assert rule.proof in (Proof.CUSTOMER_SESSION, Proof.ID_DOCUMENT_SESSION), method


def test_staff_rows_are_not_open_to_kiosks_and_sign_out_needs_a_session():
    for method in SERVICES["StaffService"]:
        assert Channel.KIOSK not in POLICY[method].channels
    assert POLICY["/hallgate.v1.StaffService/SignOut"].roles


def test_kiosk_call_list_rows_need_the_owner_token():
    for name in ("ListCallDetails", "EndSession"):
        assert POLICY[f"/hallgate.v1.KioskService/{name}"].proof == Proof.OWNER_TOKEN


def test_legal_service_is_reachable_from_the_legal_channel_only():
    """R5: every LegalService row admits the legal channel alone, and legal roles only."""
    rows = {m: r for m, r in POLICY.items() if m.startswith("/hallgate.v1.LegalService/")}
    assert set(rows) == set(SERVICES["LegalService"])
    for method, rule in rows.items():
        assert rule.channels == {Channel.LEGAL}, method
        assert rule.roles and Role.CLERK not in rule.roles and Role.HALL_MANAGER not in rule.roles, method


def test_audit_service_is_reachable_by_auditors_on_the_audit_channel_only():
    """R10: the trail is read on the audit channel, by auditors."""
    rows = {m: r for m, r in POLICY.items() if m.startswith("/hallgate.v1.AuditService/")}
    assert set(rows) == set(SERVICES["AuditService"])
    for method, rule in rows.items():
        assert rule.channels == {Channel.AUDIT}, method
        assert rule.roles == {Role.AUDITOR}, method


def test_every_role_signs_in_on_some_channel_and_counter_roles_on_clerk_terminals_only():
    assert set(SIGN_IN_CHANNELS) == set(Role)
    for role in (Role.CLERK, Role.HALL_MANAGER):
        assert SIGN_IN_CHANNELS[role] == {Channel.CLERK}
    for role, channels in SIGN_IN_CHANNELS.items():
        assert Channel.KIOSK not in channels, role


# --- purpose limitation (R2): which purposes a customer session must have been opened for ---------

CUSTOMER_PROOFS = (Proof.CUSTOMER_SESSION, Proof.ID_DOCUMENT_SESSION)


def test_every_customer_session_row_names_its_purposes_or_any_deliberately():
    """None is "not said" (the authoriser refuses it); ANY_PURPOSE (empty) is said on purpose."""
    for method, rule in POLICY.items():
        if rule.proof in CUSTOMER_PROOFS:
            assert rule.purposes is not None, f"{method}: name its purposes, or ANY_PURPOSE"
            assert rule.purposes <= set(SessionPurpose), method
        else:
            assert rule.purposes is None, f"{method}: purposes only mean something inside a customer session"


def test_every_purpose_is_allowed_somewhere_and_some_row_is_narrowed():
    rows = [r for r in POLICY.values() if r.proof in CUSTOMER_PROOFS]
    for purpose in SessionPurpose:
        assert [r for r in rows if r.purposes == ANY_PURPOSE or purpose in (r.purposes or ())], purpose
    assert [r for r in rows if r.purposes], "purpose limitation narrows at least one call"


def test_a_reset_only_in_a_password_reset_session():
    assert POLICY["/hallgate.v1.ClerkService/ResetServicePassword"].purposes == {SessionPurpose.PASSWORD_RESET}
    for name in ("GetCustomerProfile", "CloseCustomerSession", "GetCodeDelivery"):
        assert POLICY[f"/hallgate.v1.ClerkService/{name}"].purposes == ANY_PURPOSE, name
