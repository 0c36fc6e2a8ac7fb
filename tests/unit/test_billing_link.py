"""The billing link's rules (gateway/runtime/billing_link.py): which targets stay on this host, and
which settings `hallgate serve` refuses, in one line naming the variables to set."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.runtime.billing_link import check, credentials, on_this_host
from gateway.runtime.settings import Settings
from tests.support.billing_tls import BillingPki, make_billing_pki


@pytest.fixture(scope="module")
def billing_pki(tmp_path_factory: pytest.TempPathFactory) -> BillingPki:
    return make_billing_pki(tmp_path_factory.mktemp("billing-pki"))


@pytest.mark.parametrize("target", [
    "127.0.0.1:50061", "localhost:50061", "LOCALHOST:1", "[::1]:50061", "127.8.9.10:1", "ipv4:127.0.0.1:1",
    "ipv4:127.0.0.1:1,127.0.0.2:2", "ipv6:[::1]:1", "dns:///localhost:50061", "dns://8.8.8.8/127.0.0.1:1",
    "unix:/run/billing.sock", "unix:///run/billing.sock", "unix-abstract:billing", "localhost",
])
def test_loopback_and_unix_sockets_stay_on_this_host(target: str) -> None:
    assert on_this_host(target)


@pytest.mark.parametrize("target", [
    "billing.billing.svc.cluster.local:50061", "10.0.0.7:50061", "[2001:db8::1]:443", "dns:///billing:50061",
    "ipv4:127.0.0.1:1,10.0.0.1:1", "0.0.0.0:50061", "localhost.evil.example:1", "127.0.0.1.nip.io:1",
    "::1:50061", "[::1:50061", "", "billing",
])
def test_anything_else_is_another_host(target: str) -> None:
    assert not on_this_host(target)


def refused(**settings: object) -> str:
    with pytest.raises(ValueError) as e:
        check(Settings(**settings))  # type: ignore[arg-type]
    assert "\n" not in str(e.value)
    return str(e.value)


def test_plaintext_to_another_host_is_refused_naming_both_ways_out() -> None:
    line = refused(billing_target="billing.example:50061")
    assert "billing.example:50061" in line
    assert all(name in line for name in ("HALLGATE_BILLING_TLS_CA", "HALLGATE_BILLING_TLS_CERT",
                                         "HALLGATE_BILLING_TLS_KEY", "HALLGATE_BILLING_PLAINTEXT"))


def test_what_may_start(billing_pki: BillingPki) -> None:
    check(Settings())  # the embedded simulator, on loopback
    check(Settings(billing_target="127.0.0.1:50061"))  # a sidecar
    check(Settings(billing_target="billing.example:50061", billing_plaintext=True))  # said in so many words
    check(Settings(billing_target="billing.example:50061", **billing_pki.gateway_settings()))
    check(Settings(billing_target="billing.example:50061", **billing_pki.gateway_settings(client=False)))
    check(Settings(billing_target="10.0.0.7:50061", **billing_pki.gateway_settings(billing_tls_server_name="b")))


def test_contradictions_and_halves_are_refused(billing_pki: BillingPki) -> None:
    remote = "billing.example:50061"
    tls = billing_pki.gateway_settings()
    assert "HALLGATE_BILLING_TLS_KEY" in refused(billing_target=remote, billing_tls_ca=tls["billing_tls_ca"],
                                                 billing_tls_cert=tls["billing_tls_cert"])
    assert "HALLGATE_BILLING_TLS_CA" in refused(billing_target=remote, billing_tls_cert=tls["billing_tls_cert"],
                                                billing_tls_key=tls["billing_tls_key"])
    assert "HALLGATE_BILLING_TLS_CA" in refused(billing_target="127.0.0.1:1", billing_tls_server_name="b")
    line = refused(billing_target=remote, billing_plaintext=True, **tls)
    assert "HALLGATE_BILLING_TLS_CA" in line and "HALLGATE_BILLING_PLAINTEXT" in line
    # TLS settings with the embedded simulator would do nothing: said, not ignored.
    assert "HALLGATE_BILLING_TARGET" in refused(**tls)
    assert "HALLGATE_BILLING_TARGET" in refused(billing_plaintext=True)


def test_bad_files_are_refused_naming_the_file(billing_pki: BillingPki, tmp_path: Path) -> None:
    remote = "billing.example:50061"
    missing = str(tmp_path / "no-such-ca.pem")
    assert missing in refused(billing_target=remote, billing_tls_ca=missing)
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    assert "no PEM certificate" in refused(billing_target=remote, billing_tls_ca=str(not_pem))
    line = refused(billing_target=remote, **billing_pki.gateway_settings(
        billing_tls_key=billing_pki.path("stranger-gateway.key")))
    assert "does not belong to certificate" in line


def test_no_tls_settings_no_credentials(billing_pki: BillingPki) -> None:
    assert credentials(Settings(billing_target="127.0.0.1:1")) is None
    assert credentials(Settings(**billing_pki.gateway_settings())) is not None


def test_renewed_credentials_look_at_the_files_only_when_due_and_answer_each_change_once(
        billing_pki: BillingPki, tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    from gateway.runtime.billing_link import RenewedCredentials

    live = tmp_path / "live"
    live.mkdir()
    for name in ("gateway.crt", "gateway.key"):
        (live / name).write_bytes((billing_pki.directory / name).read_bytes())
    now = [0.0]
    renew = RenewedCredentials(Settings(**billing_pki.gateway_settings(
        billing_tls_cert=str(live / "gateway.crt"), billing_tls_key=str(live / "gateway.key"))), 5.0, lambda: now[0])
    first = renew.digest
    renewed = billing_pki.renewed_client()

    def replace(name: str, data: bytes) -> None:
        (live / f".{name}").write_bytes(data)
        (live / f".{name}").replace(live / name)

    replace("gateway.key", renewed.key_pem)
    replace("gateway.crt", renewed.cert_pem)
    now[0] = 4.9
    assert renew() is None  # not due yet: the files are not even looked at
    now[0] = 5.0
    with capture_logs() as logs:
        assert renew() is not None and renew.digest != first
        now[0] = 10.0
        assert renew() is None  # the same files: nothing new
    assert [e["event"] for e in logs] == ["billing_tls_reloaded"]
    assert "PRIVATE" not in repr(logs) and renewed.key_pem.decode() not in repr(logs)

    with capture_logs() as logs:
        replace("gateway.key", (billing_pki.directory / "gateway.key").read_bytes())  # not this certificate's key
        for t in (15.0, 20.0, 25.0):
            now[0] = t
            assert renew() is None
    assert [e["event"] for e in logs] == ["billing_tls_reload_rejected"]  # once per change, not per look
    assert "does not belong" in logs[0]["error"]

    replace("gateway.key", renewed.key_pem)  # put back: the same material as in use, only touched
    now[0] = 30.0
    with capture_logs() as logs:
        assert renew() is None
    assert logs == []
