"""gateway/runtime/settings.py: environment, CLI flags, help, and the server secret's key file."""

from __future__ import annotations

import argparse
import dataclasses
import os
import stat

import pytest

from gateway.runtime.settings import HELP, Settings, add_arguments, env_name, from_args, from_env

FIELDS = dataclasses.fields(Settings)
FLOAT_FIELDS = [f.name for f in FIELDS if f.type == "float"]


def parse_cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hallgate serve")
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_empty_environment_gives_the_defaults():
    assert from_env({}) == Settings()
    assert from_env({"HALLGATE_NO_SUCH_SETTING": "1", "CODE_TTL": "1"}) == Settings()


def test_from_env_parses_each_type():
    s = from_env({"HALLGATE_CODE_MAX_TRIES": "7", "HALLGATE_BILLING_TIMEOUT": "2.5",
                  "HALLGATE_REDIS_URL": "unix:///run/redis.sock", "HALLGATE_LISTEN": "0.0.0.0:6000",
                  "HALLGATE_SIM_HASH_N": "1024", "HALLGATE_SECRET_KEY": ""})
    assert s.code_max_tries == 7 and type(s.code_max_tries) is int
    assert s.billing_timeout == 2.5 and type(s.billing_timeout) is float
    assert s.redis_url == "unix:///run/redis.sock" and s.listen == "0.0.0.0:6000"
    assert s.sim_hash_n == 1024 and s.secret_key == ""
    assert s.code_ttl == Settings().code_ttl  # unset: default


def test_from_env_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("HALLGATE_LOG_LEVEL", "debug")
    assert from_env().log_level == "debug"


@pytest.mark.parametrize(("name", "raw", "kind"), [
    ("code_max_tries", "five", "int"), ("code_max_tries", "2.5", "int"), ("send_max_per_hour", "", "int"),
    ("billing_timeout", "soon", "float"), ("retention_months", "6 months", "int"),
])
def test_bad_values_exit_with_a_message_naming_the_variable_the_value_and_the_type(name, raw, kind):
    with pytest.raises(SystemExit) as e:
        from_env({env_name(name): raw})
    assert str(e.value.code) == f"{env_name(name)}={raw!r}: expected {kind}"




@pytest.mark.parametrize("name", FLOAT_FIELDS)
def test_float_settings_accept_fractions_from_the_environment(name):
    s = from_env({env_name(name): "0.5"})
    assert getattr(s, name) == 0.5


def test_float_settings_with_a_fractional_default_accept_fractions():
    # The control for the test above: a float setting whose default is written 3.0 works.
    assert from_env({"HALLGATE_BILLING_TIMEOUT": "0.25"}).billing_timeout == 0.25


def test_float_flags_accept_fractions():
    assert from_args(parse_cli("--code-ttl", "0.5", "--token-idle", "90.5"), environ={}).code_ttl == 0.5


def test_cli_flags_override_the_environment_and_unset_flags_keep_it():
    args = parse_cli("--code-max-tries", "9", "--listen", "127.0.0.1:7000", "--billing-timeout", "0.75")
    s = from_args(args, environ={"HALLGATE_CODE_MAX_TRIES": "7", "HALLGATE_LOG_LEVEL": "debug",
                                 "HALLGATE_LISTEN": "127.0.0.1:6000"})
    assert (s.code_max_tries, s.listen, s.billing_timeout, s.log_level) == (9, "127.0.0.1:7000", 0.75, "debug")
    assert dataclasses.replace(s, code_max_tries=5, listen=Settings.listen, billing_timeout=3.0,
                               log_level="info") == Settings()


def test_a_flag_may_set_an_empty_string():
    s = from_args(parse_cli("--redis-url", ""), environ={"HALLGATE_REDIS_URL": "redis://elsewhere"})
    assert s.redis_url == ""


def test_bad_flag_value_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        parse_cli("--code-max-tries", "many")
    assert e.value.code == 2
    assert "--code-max-tries" in capsys.readouterr().err


def test_add_arguments_can_limit_the_flags():
    parser = argparse.ArgumentParser()
    add_arguments(parser, ["redis_url", "data_dir"])
    assert {a.dest for a in parser._actions} == {"help", "redis_url", "data_dir"}
    s = from_args(parser.parse_args(["--data-dir", "/tmp/x"]), environ={})
    assert s == Settings(data_dir="/tmp/x")


def test_every_setting_has_help_and_a_documented_flag():
    names = [f.name for f in FIELDS]
    assert set(HELP) == set(names)
    assert all(HELP[n].strip() for n in names)
    text = argparse.ArgumentParser()
    add_arguments(text)
    usage = text.format_help()
    for n in names:
        assert "--" + n.replace("_", "-") in usage and env_name(n) in usage


def test_with_changes_a_copy():
    s = Settings()
    t = s.with_(code_ttl=1)
    assert t.code_ttl == 1 and s.code_ttl == 300
    with pytest.raises(TypeError):
        s.with_(no_such_setting=1)


# --- the server secret ---------------------------------------------------------------------------


def test_secret_key_setting_is_used_as_is(tmp_path):
    s = Settings(secret_key="shared-secret", data_dir=str(tmp_path / "d"))
    assert s.key_bytes() == b"shared-secret"
    assert not (tmp_path / "d").exists()


def test_key_file_is_created_once_with_mode_0600_and_reused(tmp_path):
    data_dir = tmp_path / "nested" / "data"
    s = Settings(data_dir=str(data_dir))
    key = s.key_bytes()
    path = data_dir / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 64 and int(key, 16) >= 0  # 32 random bytes, hex
    mtime = path.stat().st_mtime_ns
    assert s.key_bytes() == key and Settings(data_dir=str(data_dir)).key_bytes() == key
    assert path.stat().st_mtime_ns == mtime
    assert Settings(data_dir=str(tmp_path / "other")).key_bytes() != key


def test_key_file_is_0600_even_under_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        Settings(data_dir=str(tmp_path)).key_bytes()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600


def test_an_existing_key_file_is_reused(tmp_path):
    (tmp_path / "secret.key").write_text("abc123\n")
    assert Settings(data_dir=str(tmp_path)).key_bytes() == b"abc123"

