"""The browser listener's settings are safe by default and refuse unsafe combinations at start."""

from __future__ import annotations

import pytest

from gateway.runtime import startup
from gateway.runtime.settings import Settings

TLS = {"tls_cert": __file__, "tls_key": __file__, "tls_client_ca": __file__, "legal_signing_key": __file__}


def test_off_by_default():
    s = Settings()
    assert (s.browser_listen, s.web_channel, s.web_challenge) == ("", False, "")


@pytest.mark.parametrize(("changes", "named"), [
    ({"browser_listen": "0.0.0.0:443", "web_channel": True}, "HALLGATE_WEB_CHALLENGE"),
    ({"browser_listen": "0.0.0.0:443", "web_channel": True, "web_challenge": "dev-pass"}, "only with --dev"),
    ({"browser_listen": "0.0.0.0:443", "web_origins": "http://www.operator.example"}, "HALLGATE_WEB_ORIGINS"),
    ({"browser_listen": "0.0.0.0:443", "web_origins": "https://www.operator.example/page"}, "HALLGATE_WEB_ORIGINS"),
    ({"browser_listen": "0.0.0.0:443", "web_trusted_proxies": "10.0.0.0/8,proxy"}, "proxy"),
])
def test_unsafe_browser_settings_are_refused_naming_the_setting(changes, named):
    with pytest.raises(startup.StartupRefused, match=named):
        startup.check(Settings(**TLS, **changes))


def test_the_development_challenge_is_allowed_with_dev():
    startup.check(Settings(dev=True, browser_listen="127.0.0.1:8443", web_channel=True, web_challenge="dev-pass"))


def test_plaintext_development_has_no_browser_listener():
    with pytest.raises(startup.StartupRefused, match="needs TLS"):
        startup.check(Settings(insecure_dev=True, legal_signing_key=__file__, browser_listen="127.0.0.1:8443"))
