"""`hallgate serve`, `hallgate sms-dispatch`, `hallgate billing-sim`, `hallgate smsc-sim` and `hallgate health`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.cli import connect
from gateway.runtime import logs
from gateway.runtime.settings import add_arguments, from_args

SIM_SETTINGS = ["sim_seed", "sim_subscribers", "sim_hash_n", "timezone", "log_format", "log_level"]


def add_commands(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the gateway", description=(
        "Run the gateway. It needs the hall's TLS material (HALLGATE_TLS_CERT, HALLGATE_TLS_KEY, "
        "HALLGATE_TLS_CLIENT_CA) and the legal signing key (HALLGATE_LEGAL_SIGNING_KEY), and refuses to "
        "start without them; only --dev (HALLGATE_DEV=1) makes development ones under the data directory, "
        "with demo staff. With no HALLGATE_REDIS_URL it starts its own redis-server under the data "
        "directory; with no HALLGATE_BILLING_TARGET it runs the embedded billing simulator. One data "
        "directory serves one gateway (a lock file in it). Every flag can also be set by the environment "
        "variable shown."))
    add_arguments(serve)
    serve.set_defaults(run=cmd_serve)

    dispatch = sub.add_parser("sms-dispatch", help="empty the shared SMS queue to the SMSC (as its own process)",
                              description=(
        "Take messages from the SMS queue in Redis and submit them to the SMS centre over SMPP, with the "
        "release notices of expired kiosk sessions. Any number of these and of gateways cooperate through "
        "the queue's consumer group (docs/sms.md). Needs HALLGATE_REDIS_URL, HALLGATE_SMS_URL, the SMPP "
        "password (HALLGATE_SMS_PASSWORD_FILE) and the gateways' HALLGATE_SECRET_KEY."))
    add_arguments(dispatch)
    dispatch.set_defaults(run=cmd_sms_dispatch)

    sub.add_parser("smsc-sim", help="run the SMSC simulator (SMPP 3.4) as its own process (docs/smsc-sim.md)")

    sim = sub.add_parser("billing-sim", help="run the billing simulator as its own process")
    sim.add_argument("--listen", default="127.0.0.1:50061", help="address to serve on [default 127.0.0.1:50061]")
    sim.add_argument("--tls-cert", help="serve TLS with this certificate chain (PEM), as billing would")
    sim.add_argument("--tls-key", help="the private key (PEM) of --tls-cert")
    sim.add_argument("--tls-client-ca", help="with --tls-cert: mutual TLS, clients must present a certificate "
                                             "this CA bundle (PEM) vouches for")
    add_arguments(sim, SIM_SETTINGS)
    sim.set_defaults(run=cmd_billing_sim)

    health = sub.add_parser("health", help="exit 0 if the gateway reports SERVING (for container health checks)")
    connect.add_target_arguments(health, "kiosk-H001-K01")
    health.add_argument("--plaintext", action="store_true", help="the target is the plaintext health port")
    health.add_argument("--service", default="", help="service name to check [default: the whole server]")
    health.set_defaults(run=cmd_health)


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.runtime import event_loop, worker_role, workers
    from gateway.runtime.bootstrap import serve

    settings = from_args(args)
    logs.configure(settings.log_format, settings.log_level)
    if logs.is_json():
        logs.install_excepthook()
    # The banner is for a person: on a terminal, or in development mode. Otherwise its facts are in
    # the JSON "serving" line.
    banner = not worker_role.is_worker() and (settings.dev or sys.stdout.isatty())
    if settings.workers > 1 and not worker_role.is_worker():
        return event_loop.run(workers.run_workers(settings, banner=banner))
    workers.watch_lifeline()  # a worker stops itself if its supervisor is gone
    event_loop.run(serve(settings, banner=banner))
    return 0


def cmd_billing_sim(args: argparse.Namespace) -> int:
    from adapters.billing_sim.data import SeededBilling
    from adapters.billing_sim.server import serve_billing_sim, server_credentials
    from gateway.transport.tls_files import InvalidTlsFiles, read_ca, read_pair

    s = from_args(args)
    logs.configure(s.log_format, s.log_level)
    credentials = None
    if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_client_ca and not args.tls_cert):
        raise SystemExit("billing-sim: --tls-cert and --tls-key go together; --tls-client-ca needs them")
    if args.tls_cert:
        try:
            chain, key = read_pair(args.tls_cert, args.tls_key)
            client_ca = read_ca(args.tls_client_ca, "client CA bundle") if args.tls_client_ca else None
        except InvalidTlsFiles as e:
            raise SystemExit(f"billing-sim: {e}") from None
        credentials = server_credentials(chain, key, client_ca)
    data = SeededBilling(seed=s.sim_seed, subscribers=s.sim_subscribers, hash_n=s.sim_hash_n, tz=s.timezone)
    print(f"billing simulator serving on {args.listen} ({'TLS' if credentials else 'plaintext'})", flush=True)
    asyncio.run(serve_billing_sim(args.listen, data, credentials=credentials))
    return 0


def cmd_sms_dispatch(args: argparse.Namespace) -> int:
    from gateway.runtime import event_loop
    from gateway.runtime.sms import run_dispatch

    settings = from_args(args)
    logs.configure(settings.log_format, settings.log_level)
    return event_loop.run(run_dispatch(settings))


def cmd_health(args: argparse.Namespace) -> int:
    channel = grpc.insecure_channel(args.target) if args.plaintext else connect.channel(args)
    with channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=args.service),
                                                           timeout=5)
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(name)
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1
