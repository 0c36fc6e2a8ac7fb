"""Secrets as files (gateway/runtime/settings.py): HALLGATE_<NAME>_FILE for every secret setting,
refused when ambiguous or unreadable; the older --sms-password-file / HALLGATE_SMS_PASSWORD_FILE as
its alias; help that says so; and environments for children without a secret in them."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from adapters import child_process
from gateway.runtime import workers
from gateway.runtime.settings import (
    SECRETS,
    Settings,
    add_arguments,
    child_environ,
    env_name,
    file_env_name,
    from_args,
    from_env,
)

SECRET_NAMES = sorted(SECRETS)


def parse_cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hallgate serve")
    add_arguments(parser)
    return parser.parse_args(list(argv))


def secret_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_every_secret_can_come_from_a_file(tmp_path: Path, name: str) -> None:
    path = secret_file(tmp_path, name, f"value of {name}\n")
    assert getattr(from_env({file_env_name(name): path}), name) == f"value of {name}"


def test_the_file_loses_exactly_one_trailing_newline(tmp_path: Path) -> None:
    for text, want in [("k", "k"), ("k\n", "k"), ("k\n\n", "k\n"), (" k \n", " k "), ("", ""), ("\n", "")]:
        path = secret_file(tmp_path, "secret", text)
        assert from_env({"HALLGATE_SECRET_KEY_FILE": path}).secret_key == want, repr(text)


def test_a_url_with_its_password_from_a_file(tmp_path: Path) -> None:
    url = "rediss://hallgate:pa%24%24word@redis.redis.svc:6379/0"
    path = secret_file(tmp_path, "url", url + "\n")
    assert from_env({"HALLGATE_REDIS_URL_FILE": path}).redis_url == url


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_both_the_variable_and_its_file_is_refused_naming_both_never_the_value(tmp_path: Path, name: str) -> None:
    path = secret_file(tmp_path, name, "from-the-file")
    with pytest.raises(SystemExit) as e:
        from_env({env_name(name): "from-the-variable", file_env_name(name): path})
    message = str(e.value.code)
    assert env_name(name) in message and file_env_name(name) in message and "both" in message
    assert "from-the-file" not in message and "from-the-variable" not in message


def test_an_empty_variable_or_an_empty_file_variable_counts_as_unset(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "s", "k2")
    assert from_env({"HALLGATE_SECRET_KEY": "", "HALLGATE_SECRET_KEY_FILE": path}).secret_key == "k2"
    assert from_env({"HALLGATE_SECRET_KEY": "k1", "HALLGATE_SECRET_KEY_FILE": ""}).secret_key == "k1"


@pytest.mark.parametrize("make", ["missing", "directory", "unreadable", "too-large", "not-utf8"])
def test_an_unreadable_file_is_refused_with_one_line(tmp_path: Path, make: str) -> None:
    path = tmp_path / "secret"
    if make == "directory":
        path.mkdir()
    elif make == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads any file")
        path.write_text("k")
        path.chmod(0)
    elif make == "too-large":
        path.write_text("k" * (1 << 17))
    elif make == "not-utf8":
        path.write_bytes(b"\xff\xfe")
    with pytest.raises(SystemExit) as e:
        from_env({"HALLGATE_AUDIT_HMAC_KEY_FILE": str(path)})
    message = str(e.value.code)
    assert message.startswith(f"HALLGATE_AUDIT_HMAC_KEY_FILE={path}: ") and "\n" not in message


def test_file_forms_of_non_secret_settings_are_not_read(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "listen", "0.0.0.0:1")
    assert from_env({"HALLGATE_LISTEN_FILE": path}) == Settings()


def test_the_sms_password_file_setting_is_an_alias_of_the_file_form(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "smsc", "pw8chars\n")
    s = from_env({"HALLGATE_SMS_PASSWORD_FILE": path})
    assert s.sms_password == "pw8chars" and s.sms_password_file == ""
    with pytest.raises(SystemExit, match="HALLGATE_SMS_PASSWORD and HALLGATE_SMS_PASSWORD_FILE are both set"):
        from_env({"HALLGATE_SMS_PASSWORD": "other", "HALLGATE_SMS_PASSWORD_FILE": path})
    # The flag reads the file too, and beats the environment like every flag.
    s = from_args(parse_cli("--sms-password-file", path), environ={"HALLGATE_SMS_PASSWORD": "env"})
    assert s.sms_password == "pw8chars" and s.sms_password_file == ""
    with pytest.raises(SystemExit, match="both given"):
        from_args(parse_cli("--sms-password-file", path, "--sms-password", "x"), environ={})
    with pytest.raises(SystemExit, match=r"^--sms-password-file=/nonexistent: cannot read"):
        from_args(parse_cli("--sms-password-file", "/nonexistent"), environ={})


def test_flags_beat_a_secret_file_in_the_environment(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "s", "from-file")
    assert from_args(parse_cli("--secret-key", "flag"), environ={"HALLGATE_SECRET_KEY_FILE": path}).secret_key == "flag"


def test_help_names_the_file_form_of_every_secret() -> None:
    parser = argparse.ArgumentParser(prog="hallgate serve")
    add_arguments(parser)
    text = " ".join(parser.format_help().split())
    for name in SECRETS:
        assert file_env_name(name) in text, name
    assert "HALLGATE_LISTEN_FILE" not in text


def test_child_environments_hold_no_secret() -> None:
    environ = {"PATH": "/bin", "HALLGATE_SECRET_KEY": "s", "HALLGATE_REDIS_URL": "redis://:pw@h/0",
               "HALLGATE_SECRET_KEY_FILE": "/run/secrets/k", "HALLGATE_STAFF_TOKEN": "t", "HALLGATE_LISTEN": "x:1",
               "HALLGATE_SMSC_SIM_PASSWORD": "p"}
    assert child_environ(environ) == {"PATH": "/bin", "HALLGATE_SECRET_KEY_FILE": "/run/secrets/k",
                                      "HALLGATE_LISTEN": "x:1"}
    assert child_process.environ(environ) == {"PATH": "/bin"}


def test_workers_get_every_secret_as_an_inherited_file_and_none_as_a_value(tmp_path: Path) -> None:
    given = secret_file(tmp_path, "given", "old")
    s = Settings(secret_key="sk", audit_hmac_key="ak", redis_url="redis://u:pw@127.0.0.1:1/0",
                 audit_archive_url="postgresql://u:pw2@/db", sms_password="smpp")
    with workers.SecretFiles(s) as files:
        env = workers.worker_environ(s, files.paths, {"PATH": "/bin", "HALLGATE_SECRET_KEY_FILE": given,
                                                      "HALLGATE_AUDIT_HMAC_KEY": "ak", "HALLGATE_STAFF_TOKEN": "t"})
        assert not {"sk", "ak", "redis://u:pw@127.0.0.1:1/0", "postgresql://u:pw2@/db", "smpp", "t"} & set(env.values())
        assert env["HALLGATE_SECRET_KEY_FILE"] == files.paths["secret_key"] != given  # the resolved value
        assert "HALLGATE_STAFF_SECRET_KEY_FILE" not in env  # empty secrets: nothing
        assert env["PATH"] == "/bin"
        assert from_env(env) == s
    assert files.fds == ()
