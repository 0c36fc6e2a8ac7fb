"""`hallgate`: the parser made of every subcommand module, and the entry point."""

from __future__ import annotations

import argparse
import os
import sys

from gateway.runtime import logs

# Before grpc is imported: the C core reads GRPC_VERBOSITY once, and writes plain text to stderr,
# which a production JSON log cannot hold (gateway/runtime/logs.py).
if sys.argv[1:2] in (["serve"], ["sms-dispatch"]):
    logs.quiet_grpc_core()

import grpc
from redis.exceptions import RedisError

from gateway.cli import admin, audit, clerk, incident, kiosk, legal, lending, parsing, retention, serving
from gateway.cli.connect import describe_error, describe_unreachable
from gateway.domain.errors import DependencyUnavailable


def build_parser() -> argparse.ArgumentParser:
    parser = parsing.Parser(prog="hallgate", description=(
        "The hallgate command: serve the gateway, run the billing simulator, act as a terminal, administer."))
    parsing.add_global_options(parser)
    sub = parser.add_subparsers(title="commands")
    for module in (serving, kiosk, clerk, legal, lending, audit, incident, admin, retention):
        module.add_commands(sub)
    parsing.share_connection_options(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["smsc-sim"]:  # its own command line (adapters/smsc_sim), passed through whole
        from adapters.smsc_sim.__main__ import main as smsc_sim

        return smsc_sim(argv[1:])
    parser = build_parser()
    args = parsing.parse(parser, argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except grpc.RpcError as err:
        print(describe_error(err, getattr(args, "target", "")), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except EOFError:  # a prompt's input ended (stdin closed)
        print("error: the input ended before the answer was typed", file=sys.stderr)
        return 1
    except (DependencyUnavailable, RedisError) as err:  # one line for the operator, not a traceback
        print(f"error: {describe_unreachable(err, args)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `hallgate kiosk calls … | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (RuntimeError, OSError) as err:
        if logs.is_json():  # `serve` in production: the refusal is a log line like any other
            import structlog

            structlog.get_logger("hallgate").error("error", error=str(err), error_type=type(err).__name__)
        else:
            print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception:
        if not logs.is_json():
            raise
        logs.log_uncaught(*sys.exc_info())  # type: ignore[arg-type]
        return 1
