"""structlog configured once: ISO UTC timestamps, JSON in production, console on a terminal.

In JSON mode every line the process writes is one JSON object, whoever logs it: structlog's own
loggers render directly; the standard library's (asyncio, grpc's Python side, the embedded billing
simulator, `warnings` through logging.captureWarnings) go through structlog's ProcessorFormatter
with the same processors and renderer; an exception nobody caught becomes one JSON line
(`install_excepthook`). grpc's C core writes to stderr itself, in its own format: `quiet_grpc_core`
turns that off before grpc is imported (the CLI does it for `serve`).

Tracebacks are rendered plainly (never with local variables), since locals may hold secrets.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from types import TracebackType
from typing import Any

import structlog

GRPC_VERBOSITY = "GRPC_VERBOSITY"
_state = {"json": False}
_HANDLER_NAME = "hallgate"


def quiet_grpc_core(environ: Any = None) -> None:
    """GRPC_VERBOSITY=NONE unless the operator chose a level: grpc's C core logs in its own plain
    text format (handshake failures even at INFO), which a JSON log cannot hold. Only effective
    before grpc is first imported (the core reads it once)."""
    env = os.environ if environ is None else environ
    env.setdefault(GRPC_VERBOSITY, "NONE")


def is_json() -> bool:
    """Whether `configure` chose JSON lines."""
    return _state["json"]


def configure(fmt: str = "auto", level: str = "info", cache: bool = True) -> None:
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    _state["json"] = not console
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        if console else structlog.processors.JSONRenderer()
    )
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if not console:
        processors.append(structlog.processors.format_exc_info)
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=cache,
    )
    _route_stdlib(processors, renderer, numeric)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (a test's capture may replace it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _route_stdlib(processors: list[structlog.typing.Processor], renderer: structlog.typing.Processor,
                  level: int) -> None:
    """The standard library's records through the same processors and renderer, on stderr."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *processors],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):  # configure() again (tests, a worker) replaces, never doubles
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)


def log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None,
                 event: str = "uncaught_exception") -> None:
    """One log line (JSON in production) for an exception nobody handled, its traceback included."""
    structlog.get_logger("hallgate").critical(event, exc_info=(exc_type, exc, tb))


def install_excepthook() -> None:
    """Uncaught exceptions, in the main thread or any other, as one log line instead of the
    interpreter's multi-line traceback."""

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        log_uncaught(exc_type, exc, tb)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or issubclass(args.exc_type, SystemExit):
            return
        log_uncaught(args.exc_type, args.exc_value, args.exc_traceback, "uncaught_thread_exception")

    sys.excepthook = hook
    threading.excepthook = thread_hook
