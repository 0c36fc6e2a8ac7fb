"""Settings: read once from HALLGATE_* environment variables, overridable by CLI flags.

Every setting is declared once in SETTINGS with its default and help, so `hallgate serve --help`
and the environment can never disagree.

Secrets (SECRETS) may instead be given as files: HALLGATE_<NAME>_FILE names a file holding the value
(a mounted Kubernetes Secret), read once here with one trailing newline removed. Giving both the
variable and its _FILE, or a _FILE that cannot be read, stops the process with one line naming the
variable (never the value). HALLGATE_SMS_PASSWORD_FILE is both the _FILE form of sms_password and
the older setting sms_password_file: either way the password is read into sms_password.
"""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    """Everything the gateway can be told. Durations are seconds."""

    listen: str = "127.0.0.1:50051"
    health_listen: str = ""
    proxy_listen: str = ""
    proxy_trusted: str = ""
    browser_listen: str = ""
    browser_proxy_listen: str = ""
    browser_tls_cert: str = ""
    browser_tls_key: str = ""
    browser_idle_timeout: float = 120
    web_channel: bool = False
    web_origins: str = ""
    web_trusted_proxies: str = ""
    web_client_ip_header: str = "x-forwarded-for"
    web_calls_per_minute: int = 60
    web_proofs_per_hour: int = 20
    web_challenge: str = ""
    web_challenge_site_key: str = ""
    web_challenge_secret: str = ""
    web_challenge_verify_url: str = ""
    web_challenge_script: str = ""
    web_challenge_timeout: float = 5
    max_connection_age: float = 300
    max_connection_age_grace: float = 600
    tls_reload: float = 5.0
    metrics_listen: str = ""
    workers: int = 1
    data_dir: str = ".hallgate"
    redis_url: str = ""
    billing_target: str = ""
    billing_tls_ca: str = ""
    billing_tls_cert: str = ""
    billing_tls_key: str = ""
    billing_tls_server_name: str = ""
    billing_plaintext: bool = False
    secret_key: str = ""
    code_ttl: float = 300
    code_max_tries: int = 5
    send_min_interval: float = 60
    send_max_per_hour: int = 5
    sim_swap_window: float = 72 * 3600
    token_idle: float = 300
    token_absolute: float = 900
    lock_threshold: int = 5
    lock_duration: float = 1800
    fail_memory: float = 86400
    answer_floor: float = 0.3
    retention_months: int = 6
    timezone: str = "Asia/Shanghai"
    billing_timeout: float = 3.0
    billing_page_size: int = 1000
    redis_timeout: float = 1.0
    grace_period: float = 5.0
    max_message_bytes: int = 16384
    log_format: str = "auto"
    log_level: str = "info"
    sim_seed: str = "hallgate-demo"
    sim_subscribers: int = 3000
    sim_hash_n: int = 2**14
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    insecure_dev: bool = False
    dev: bool = False
    trust_domain: str = "hallgate.example"
    revocation_refresh: float = 1.0
    staff_idle: float = 900
    staff_password_max_age: float = 90 * 86400
    staff_hash_n: int = 2**14
    staff_secret_key: str = ""
    staff_secret_retired_keys: str = ""
    customer_session_idle: float = 600
    notify_subscriber: bool = True
    notice_daily_cap: int = 5
    notice_ttl: float = 86400
    sms_url: str = ""
    sms_system_id: str = "hallgate"
    sms_password: str = ""
    sms_password_file: str = ""
    sms_source_addr: str = "HALLGATE"
    sms_window: int = 10
    sms_throughput: float = 50.0
    sms_max_attempts: int = 5
    sms_submit_timeout: float = 10.0
    sms_receipt_timeout: float = 600
    sms_claim_idle: float = 30
    sms_dispatchers: int = 1
    sms_outbox: str = ""
    audit_hmac_key: str = ""
    audit_retired_keys: str = ""
    audit_chain: str = "main"
    audit_durability: str = "strict"
    audit_retention_months: int = 12
    audit_replicas: int = 0
    audit_hot_days: int = 30
    audit_archive_url: str = ""
    legal_signing_key: str = ""
    legal_approval_days: float = 30
    legal_max_window_months: int = 12
    legal_document_dir: str = ""
    legal_document_url: str = ""
    legal_fulfil_lease: float = 3600
    legal_max_letter_bytes: int = 8 * 2**20
    history_days: int = 365
    loan_max_days: float = 3
    loan_overdue_check: float = 3600
    incident_le_notice_business_days: int = 7
    incident_customer_wait_business_days: int = 7
    incident_retention_days: int = 730
    legal_retention_days: int = 1825
    sms_record_retention_days: int = 90
    customer_session_retention_days: int = 365
    loan_retention_days: int = 1825

    def key_bytes(self) -> bytes:
        """The server secret that keys code hashes. Shared by every gateway process of a deployment:
        from HALLGATE_SECRET_KEY, else a file created once in the data directory (mode 0600)."""
        if self.secret_key:
            return self.secret_key.encode()
        path = Path(self.data_dir) / "secret.key"
        if not path.exists():
            # Written whole to a temporary file, then linked into place: two processes starting
            # together agree on one key, and nobody ever reads a half-written one.
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".secret.key.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        key = path.read_text().strip().encode()
        if not key:
            raise RuntimeError(f"{path} is empty: remove it or set HALLGATE_SECRET_KEY")
        return key

    def audit_keys(self) -> tuple[dict[str, bytes], str]:
        """(keys by id, current key id) for the audit chain; retired keys keep old events verifiable."""
        from gateway.domain.audit_chain import keyring

        secret = self.audit_hmac_key.encode() if self.audit_hmac_key else self.key_bytes()
        retired = [r.encode() for r in self.audit_retired_keys.split(",") if r]
        return keyring(secret, retired)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


HELP: dict[str, str] = {
    "listen": "address to serve on (host:port); use a loopback address unless fronted by TLS",
    "health_listen": ("extra plaintext address serving only grpc.health.v1, for probes that cannot present "
                      "a client certificate (Kubernetes, Docker); empty: none"),
    "proxy_listen": ("address taking the edge proxy's TLS-passthrough connections, each opened by a PROXY protocol "
                     "header (v1 or v2) naming the terminal's address, which the audit trail records; empty: none "
                     "(deploy/k8s/edge/)"),
    "proxy_trusted": ("comma-separated addresses or CIDRs of the edge proxies allowed to connect to proxy_listen; "
                      "a connection from anywhere else, or without a valid header, is closed"),
    "browser_listen": ("HTTPS address serving browsers: the public API over Connect (JSON or binary), gRPC-Web and "
                       "gRPC, and the self-service page (docs/browser.md); a hall client certificate is optional "
                       "there and identifies a kiosk exactly as on listen; empty: none"),
    "browser_proxy_listen": ("address taking the edge proxy's TLS-passthrough connections for the browser "
                             "listener, each opened by a PROXY protocol header naming the browser's address, as "
                             "proxy_listen does for gRPC (same proxy_trusted); needs browser_listen; empty: none"),
    "browser_tls_cert": "the browser listener's certificate chain (PEM; the website's public one); empty: tls_cert",
    "browser_tls_key": "the browser listener's private key (PEM); empty: tls_key",
    "browser_idle_timeout": ("seconds without input after which the self-service page clears the screen and ends "
                             "the session (kiosks)"),
    "web_channel": ("serve the website channel (R9): browser callers without a client certificate may use the "
                    "kiosk path, with the per-address limits and the bot challenge below; off: they are refused"),
    "web_origins": ("comma-separated origins (https://host[:port]) allowed to call the browser listener beside the "
                    "site itself, for a page served elsewhere; every other cross-origin call is refused"),
    "web_trusted_proxies": ("comma-separated addresses or CIDRs of the operator's own HTTP proxies in front of the "
                            "browser listener: only from them is web_client_ip_header believed"),
    "web_client_ip_header": "header in which a trusted proxy names the caller's address (rightmost untrusted hop)",
    "web_calls_per_minute": "website calls one address (IPv6: its /64) may make per minute",
    "web_proofs_per_hour": ("website code requests and sign-ins one address (IPv6: its /64) may make per hour; "
                            "each also needs a solved bot challenge"),
    "web_challenge": ("the website's bot challenge: turnstile (Cloudflare) or hcaptcha, the vendor's widget in "
                      "the page and its token checked with the vendor's siteverify (docs/browser.md, Bot defence); "
                      "dev-pass or dev-fail (the development one, told to pass or fail; only with --dev); empty: "
                      "none, and the website channel refuses to start"),
    "web_challenge_site_key": "the vendor's site key for this website (public: the page's widget shows it)",
    "web_challenge_secret": ("the vendor's secret for this website, sent only to its siteverify (prefer "
                             "HALLGATE_WEB_CHALLENGE_SECRET_FILE)"),
    "web_challenge_verify_url": ("the siteverify URL; empty: the vendor's own. https, or http to a loopback address "
                                 "(a local relay)"),
    "web_challenge_script": ("the widget's script URL (https; its origin is added to the self-service page's "
                             "Content-Security-Policy); empty: the vendor's own"),
    "web_challenge_timeout": "seconds siteverify has to answer; past it the call is refused UNAVAILABLE",
    "max_connection_age": ("seconds a client connection lives before the server asks the client to reconnect "
                           "(GOAWAY), so clients spread over new pods; 0: forever"),
    "max_connection_age_grace": "seconds calls still running on an aged connection get before it is closed",
    "tls_reload": ("seconds between checks of the TLS files (certificate, key, hall CA, and billing_tls_*): a "
                   "renewed file is used for new connections without a restart; 0: read once"),
    "metrics_listen": ("plain HTTP address (host:port) serving Prometheus metrics at /metrics; empty: none. "
                       "Labels carry no subscriber data; keep it on a loopback or internal address"),
    "workers": ("gateway processes sharing the listen port (SO_REUSEPORT); above 1 a supervisor starts "
                "embedded Redis/billing once, runs the workers and serves their summed metrics"),
    "data_dir": "directory for the embedded Redis, the SMS outbox and the secret key",
    "redis_url": ("Redis URL: redis://, rediss://, unix://, redis+sentinel://h1:p1,h2:p2/<service>, "
                  "redis+cluster://h1:p1,h2:p2 (docs/scale-out.md); empty: start an embedded redis-server"),
    "billing_target": "billing service host:port; empty: run the embedded billing simulator",
    "billing_tls_ca": ("CA bundle (PEM) billing's server certificate must chain to: the link to billing is TLS, "
                       "and a billing_target on another host must be TLS unless billing_plaintext (docs/billing.md)"),
    "billing_tls_cert": "the gateway's client certificate chain (PEM) for billing's mutual TLS; with billing_tls_key",
    "billing_tls_key": "the private key (PEM) of billing_tls_cert",
    "billing_tls_server_name": ("the name billing's certificate must carry, when it is not billing_target's host "
                                "(an address, or a name behind a load balancer)"),
    "billing_plaintext": ("accept plaintext to a billing_target on another host, where the link is protected "
                          "otherwise (a service mesh's mutual TLS, IPsec); call lists would cross it in the clear"),
    "secret_key": "server secret keying code hashes; empty: generated once into the data directory",
    "code_ttl": "seconds a one-time code stays valid",
    "code_max_tries": "wrong entries after which a code dies",
    "send_min_interval": "minimum seconds between two codes for one number",
    "send_max_per_hour": "codes per number per hour",
    "sim_swap_window": "seconds after a SIM change or port-in during which no code is sent",
    "token_idle": "seconds an access token survives without use",
    "token_absolute": "seconds an access token lives at most",
    "lock_threshold": "consecutive failed sign-ins that lock a number",
    "lock_duration": "seconds a locked number stays locked (all channels)",
    "fail_memory": "seconds a failed sign-in is remembered towards the lock",
    "answer_floor": ("seconds every one-time code request and every failed owner proof (kiosk sign-in, counter PIN "
                     "pad) take at least, so neither a number's state (known, unknown, locked, SIM-swapped, "
                     "throttled) nor what was wrong can be told by time; it must exceed billing's password check"),
    "retention_months": "call-list window: the current month and this many minus one before it",
    "timezone": "the operator's time zone, which defines calendar months",
    "billing_timeout": "deadline in seconds for each billing call",
    "billing_page_size": "call-detail records fetched from billing per page",
    "redis_timeout": "socket timeout in seconds for Redis",
    "grace_period": "seconds in-flight calls get to finish on SIGTERM",
    "max_message_bytes": "largest request message accepted (LegalService.RegisterRequest: see legal_max_letter_bytes)",
    "log_format": "json, console or auto (console on a terminal)",
    "log_level": "debug, info, warning or error",
    "sim_seed": "seed of the embedded billing simulator's data",
    "sim_subscribers": "number of seeded subscribers in the billing simulator",
    "sim_hash_n": "scrypt cost (N) for the simulator's password hashes",
    "tls_cert": "server certificate (PEM); empty: a development CA and certificates under the data directory",
    "tls_key": "server private key (PEM)",
    "tls_client_ca": "the hall CA bundle (PEM) every client certificate must chain to",
    "insecure_dev": "development only: serve plaintext on loopback, identity from the x-hallgate-dev-identity header",
    "dev": ("development mode: without TLS material or a legal signing key, make a development CA and keys under "
            "the data directory; demo staff; the banner prints demo secrets. Never in production"),
    "trust_domain": "SPIFFE trust domain of the operator's terminal certificates",
    "revocation_refresh": "seconds between reloads of the terminal deny-list",
    "staff_idle": "seconds a staff session survives without use",
    "staff_password_max_age": "seconds after which a staff password must be changed (90 days)",
    "staff_hash_n": "scrypt cost (N) for staff password hashes",
    "staff_secret_key": ("key sealing staff TOTP secrets in Redis (AES-256-GCM, docs/secrets.md); empty: derived "
                         "from the server secret (HKDF)"),
    "staff_secret_retired_keys": ("comma-separated retired staff secret keys: they still open secrets sealed before a "
                                  "rotation until `hallgate staff rekey` re-seals them"),
    "customer_session_idle": "seconds a clerk's customer session survives without use",
    "notify_subscriber": "SMS the subscriber whenever their call list is released or password reset (docs/sms.md)",
    "notice_daily_cap": ("notices of one kind (release, lock, reset, SIM swap) one number may get per day; "
                         "more are held back and counted (0: no cap)"),
    "notice_ttl": "seconds a notice may wait for the SMSC before it is dropped unsent",
    "sms_url": ("the SMS centre: smpp://host:port (SMPP 3.4 transceiver), outbox:PATH (development: a JSON Lines "
                "file); empty: start the embedded SMSC simulator (SMPP) writing to the SMS outbox (docs/sms.md)"),
    "sms_system_id": "SMPP system_id the gateway binds with",
    "sms_password": "SMPP password (prefer HALLGATE_SMS_PASSWORD_FILE; never put it on a command line)",
    "sms_password_file": "file holding the SMPP password (e.g. a mounted Kubernetes secret)",
    "sms_source_addr": "source address of every SMS: digits (international) or an alphanumeric sender name",
    "sms_window": "SMPP submits awaiting the SMSC's answer at a time, per dispatcher (the SMSC's window)",
    "sms_throughput": "messages (segments) per second one dispatcher hands over at most; 0: no limit",
    "sms_max_attempts": "transient failures after which a message is dead-lettered (throttling does not count)",
    "sms_submit_timeout": "seconds to wait for the SMSC's answer to one submit before trying again",
    "sms_receipt_timeout": "seconds after submission a delivery receipt may take before the state is no_receipt",
    "sms_claim_idle": "seconds a message held by a silent dispatcher waits before another takes it over",
    "sms_dispatchers": "SMS dispatchers in this gateway process (0: none; run `hallgate sms-dispatch` instead)",
    "sms_outbox": "the SMS outbox (what phones received): written by the SMSC simulator or outbox:; empty: "
                  "<data_dir>/sms-outbox.jsonl",
    "history_days": "how far back ListAccessHistory looks",
    "loan_max_days": "days an archive loan may last at most (R3: 3); overdue loans are listed, counted and alerted",
    "loan_overdue_check": "seconds between checks for overdue archive loans (each is alerted at most once a day)",
    "incident_le_notice_business_days": ("business days after a breach is determined within which law enforcement "
                                         "must be notified (47 CFR 64.2011(b): 7)"),
    "incident_customer_wait_business_days": ("business days after notifying law enforcement before customers are "
                                             "notified, unless law enforcement asks otherwise (64.2011(c): 7)"),
    "incident_retention_days": "days breach records are kept after closing (64.2011(d): at least 2 years)",
    "legal_retention_days": ("days a closed legal request, its letter and its delivery records are kept before "
                             "disposal (R8)"),
    "sms_record_retention_days": "days an SMS's life record (state and times, never its text) is kept",
    "customer_session_retention_days": "days a closed counter session's record is kept before disposal",
    "loan_retention_days": "days a returned archive loan's record is kept before disposal",
    "audit_hmac_key": "secret keying the audit chain's HMACs; empty: derived from the secret key",
    "audit_retired_keys": "comma-separated retired audit secrets, so events sealed before a rotation still verify",
    "audit_chain": "name of the audit chain (its Redis keys share the hash tag {name})",
    "audit_durability": ("strict: acknowledge an audit event only once fsynced (WAITAOF on Redis >= 7.2, else "
                         "appendfsync always is required); trust: rely on the server's own settings"),
    "audit_replicas": ("replicas that must confirm each audit event before the call goes on (Sentinel/Cluster: "
                       "set >= 1, so a failover cannot lose an acknowledged event)"),
    "audit_retention_months": "months audit events are kept before `hallgate audit trim` removes them",
    "audit_hot_days": ("days audit events stay in Redis before the archive mover moves them to the archive "
                       "(docs/audit.md, Archive); only with audit_archive_url"),
    "audit_archive_url": ("PostgreSQL URL or conninfo of the audit archive (postgresql://user@/db?host=/socket/dir); "
                          "empty: no archive, every event stays in Redis until trimmed"),
    "legal_signing_key": "Ed25519 private key (PEM) signing legal delivery manifests; empty: a dev key in the data dir",
    "legal_approval_days": "days an approved legal request may wait for fulfilment before it expires",
    "legal_max_window_months": "longest time window a legal request may cover",
    "legal_document_dir": "where scanned agency letters are kept; empty: <data_dir>/documents",
    "legal_document_url": ("PostgreSQL URL or conninfo of the shared letter store, so every gateway of a deployment "
                           "sees every letter; empty: files under legal_document_dir (one host only)"),
    "legal_fulfil_lease": "seconds a fulfilment may stream before it counts as interrupted",
    "legal_max_letter_bytes": "largest scanned letter accepted (the only large request message)",
}


# Settings that are secrets, or may carry one (a URL with its password). Each can also be given as a
# file, HALLGATE_<NAME>_FILE (a mounted Kubernetes secret), and none is passed on in a child's environment.
SECRETS = frozenset({
    "secret_key", "audit_hmac_key", "audit_retired_keys", "staff_secret_key", "staff_secret_retired_keys",
    "redis_url", "sms_password", "audit_archive_url", "legal_document_url", "web_challenge_secret",
})


KINDS: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}


def kind_of(name: str) -> type:
    """The declared type of a setting (not its default's: `code_ttl: float = 300` is a float)."""
    annotation = next(f.type for f in fields(Settings) if f.name == name)
    return KINDS[annotation if isinstance(annotation, str) else annotation.__name__]


def env_name(name: str) -> str:
    return "HALLGATE_" + name.upper()


def file_env_name(name: str) -> str:
    """HALLGATE_<NAME>_FILE: the variable naming a file that holds secret setting `name`."""
    return env_name(name) + "_FILE"


# sms_password_file is not a setting of its own any more but the _FILE form of sms_password
# (HALLGATE_SMS_PASSWORD_FILE, --sms-password-file): resolved into sms_password when read.
FILE_ALIASES = {"sms_password_file": "sms_password"}
MAX_SECRET_FILE_BYTES = 64 * 1024  # a secret, a URL or a list of retired keys; anything larger is a mistake

# Variables that hold secrets without being settings: never passed on to a child either.
OTHER_SECRET_VARIABLES = frozenset({"HALLGATE_STAFF_TOKEN", "HALLGATE_SMSC_SIM_PASSWORD"})


def read_secret_file(path: str, source: str) -> str:
    """The secret in file `path` (one trailing newline removed); `source` names where the path came
    from in the SystemExit raised when it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as e:
        raise SystemExit(f"{source}={path}: cannot read the file: {e.strerror or e}") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise SystemExit(f"{source}={path}: larger than {MAX_SECRET_FILE_BYTES} bytes, not a secret")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SystemExit(f"{source}={path}: not UTF-8 text") from None
    return text[:-1] if text.endswith("\n") else text


def _secret_raw(name: str, environ: Mapping[str, str]) -> str | None:
    """The raw value of secret setting `name`: HALLGATE_<NAME>, or the file HALLGATE_<NAME>_FILE
    names. An empty variable counts as unset; both given is refused."""
    raw, path = environ.get(env_name(name)), environ.get(file_env_name(name))
    if not path:
        return raw
    if raw:
        raise SystemExit(f"{env_name(name)} and {file_env_name(name)} are both set: give the secret one way")
    return read_secret_file(path, file_env_name(name))


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment; unset variables keep their defaults. Secrets may come from
    files (HALLGATE_<NAME>_FILE)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name in FILE_ALIASES:
            continue  # read as the _FILE form of the setting it names
        raw = _secret_raw(f.name, environ) if f.name in SECRETS else environ.get(env_name(f.name))
        if raw is not None:
            values[f.name] = _parse(f.name, kind_of(f.name), raw)
    return Settings(**values)


def child_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment for a child process with no secret in it: every secret setting's
    variable (HALLGATE_<NAME>) and the other secret variables are left out. The _FILE paths stay (a
    path is no secret); children that read no setting at all get adapters.child_process.environ()."""
    environ = os.environ if environ is None else environ
    secret = {env_name(n) for n in SECRETS} | OTHER_SECRET_VARIABLES
    return {k: v for k, v in environ.items() if k not in secret}


def _parse(name: str, kind: type, raw: str) -> Any:
    if kind is bool:
        if raw.lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.lower() in {"0", "false", "no", "off", ""}:
            return False
        raise SystemExit(f"{env_name(name)}={raw!r}: expected true or false")
    try:
        return kind(raw)
    except ValueError:
        raise SystemExit(f"{env_name(name)}={raw!r}: expected {kind.__name__}") from None


def add_arguments(parser: argparse.ArgumentParser, names: list[str] | None = None) -> None:
    """One --flag per setting, documented with its environment variable and default."""
    defaults = Settings()
    for f in fields(Settings):
        if names is not None and f.name not in names:
            continue
        default = getattr(defaults, f.name)
        if isinstance(default, bool):
            parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, action="store_const", const=True,
                                default=None, help=f"{HELP[f.name]} [{env_name(f.name)}=1]")
            continue
        if f.name in SECRETS:
            where = f"{env_name(f.name)} or {file_env_name(f.name)} (a file holding it, e.g. a mounted secret)"
            shown = "empty" if not default else repr(default)
            help_text = f"{HELP[f.name]} [{where}; default {shown}]"
        elif f.name in FILE_ALIASES:
            help_text = f"{HELP[f.name]} [{env_name(f.name)}: the {env_name(FILE_ALIASES[f.name])} file]"
        else:
            help_text = f"{HELP[f.name]} [{env_name(f.name)}, default {default!r}]"
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind_of(f.name), default=None,
                            help=help_text)


def from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    base = from_env(environ)
    given = {f.name: getattr(args, f.name) for f in fields(Settings) if getattr(args, f.name, None) is not None}
    for alias, name in FILE_ALIASES.items():
        path = given.pop(alias, None)
        if path:  # --sms-password-file: read like HALLGATE_SMS_PASSWORD_FILE; a flag beats the environment
            if given.get(name):
                flag = "--" + name.replace("_", "-")
                raise SystemExit(f"{flag} and {flag}-file are both given: give the secret one way")
            given[name] = read_secret_file(path, "--" + alias.replace("_", "-"))
    return replace(base, **given)
