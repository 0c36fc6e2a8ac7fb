"""grpc_server_started_total, grpc_server_handled_total and grpc_server_handling_seconds for every
call, and the domain counters (gateway/metrics.py `record_outcome`) once the call has finished.

Outermost interceptor, outside the error interceptor: it sees the status the client gets (a domain
error has already been mapped to a status, an unexpected one to INTERNAL) and times the whole call,
audit append included. From there it also reads the finished call's CallContext, which the audit
interceptor further in filled (the ContextVar is shared by every layer of one call's task).

Label values come only from the compiled protobuf descriptors: a method the server does not know
is counted as service and method "unknown", never by the path the caller sent (which could carry
anything, a subscriber number included). Label children are looked up once per method.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

import grpc
from google.protobuf import descriptor_pool

from gateway import metrics, request_context, status
from gateway.interceptors.wrapping import Streaming, Unary, messages, wrap, writer

UNKNOWN = "unknown"
OK = grpc.StatusCode.OK


def grpc_type(handler: grpc.RpcMethodHandler) -> str:
    if handler.request_streaming:
        return "bidi_stream" if handler.response_streaming else "client_stream"
    return "server_stream" if handler.response_streaming else "unary"


def method_labels(path: str) -> tuple[str, str]:
    """(service, method) of `/package.Service/Method` if the descriptors know it, else unknown."""
    parts = path.split("/")
    if len(parts) == 3 and not parts[0]:
        try:
            service = descriptor_pool.Default().FindServiceByName(parts[1])
        except KeyError:
            return UNKNOWN, UNKNOWN
        if parts[2] in service.methods_by_name:
            return parts[1], parts[2]
    return UNKNOWN, UNKNOWN


class _Method:
    """The metric children of one (method, call type), and the wrappers that feed them."""

    __slots__ = ("handled", "handling", "labels", "started")

    def __init__(self, kind: str, service: str, method: str) -> None:
        self.labels = (kind, service, method)
        self.started = metrics.GRPC_STARTED.labels(*self.labels)
        self.handling = metrics.GRPC_HANDLING.labels(*self.labels)
        self.handled: dict[grpc.StatusCode, Any] = {}

    def finish(self, code: grpc.StatusCode, seconds: float) -> None:
        self.handling.observe(seconds)
        child = self.handled.get(code)
        if child is None:
            child = self.handled[code] = metrics.GRPC_HANDLED.labels(*self.labels, code.name)
        child.inc()
        metrics.record_outcome(request_context.current(), code)

    def unary(self, behaviour: Unary) -> Unary:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            self.started.inc()
            request_context.begin("", "")  # a fresh context: the audit interceptor replaces it if it audits
            started = time.perf_counter()
            code = OK
            try:
                response = await behaviour(request, context)
                set_code = context.code()
                if isinstance(set_code, grpc.StatusCode):
                    code = set_code
                return response
            except BaseException as err:
                code = status.code_of(err, context)
                raise
            finally:
                self.finish(code, time.perf_counter() - started)

        return call

    def streaming(self, behaviour: Streaming) -> Streaming:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncGenerator[Any, None]:
            self.started.inc()
            request_context.begin("", "")
            started = time.perf_counter()
            code = OK
            try:
                async with messages(behaviour, request, context) as inner:
                    async for message in inner:
                        yield message
                set_code = context.code()
                if isinstance(set_code, grpc.StatusCode):
                    code = set_code
            except BaseException as err:
                code = status.code_of(err, context)
                raise
            finally:
                self.finish(code, time.perf_counter() - started)

        return call


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every call the server has a handler for (see the module docstring)."""

    def __init__(self) -> None:
        self._methods: dict[tuple[str, str], _Method] = {}

    def _method(self, path: str, handler: grpc.RpcMethodHandler) -> _Method:
        kind = grpc_type(handler)
        found = self._methods.get((path, kind))
        if found is None:
            service, method = method_labels(path)
            found = _Method(kind, service, method)
            if service != UNKNOWN:  # only known methods are kept: callers choose unknown paths
                self._methods[(path, kind)] = found
        return found

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        m = self._method(details.method, handler)
        return wrap(handler, m.unary, lambda b: writer(m.streaming(b)))
