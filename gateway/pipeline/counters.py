"""grpc_server_started_total, grpc_server_handled_total and grpc_server_handling_seconds for every
call, and the domain counters (gateway/runtime/metrics.py `record_outcome`) once the call has finished.

The names are the conventional gRPC server metrics whatever the transport, since dashboards read
them. Label values come only from the compiled protobuf descriptors: a method the server does not
know is counted as service and method "unknown", never by the path the caller sent (which could
carry anything, a subscriber number included). Label children are looked up once per method.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pool

from gateway.domain.request_context import CallContext
from gateway.pipeline.codes import Code
from gateway.runtime import metrics

UNKNOWN = "unknown"


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


class MethodCounters:
    """The metric children of one (method, call kind)."""

    __slots__ = ("handled", "handling", "labels", "started")

    def __init__(self, kind: str, service: str, method: str) -> None:
        self.labels = (kind, service, method)
        self.started = metrics.GRPC_STARTED.labels(*self.labels)
        self.handling = metrics.GRPC_HANDLING.labels(*self.labels)
        self.handled: dict[Code, Any] = {}

    def finish(self, call: CallContext, code: Code, seconds: float) -> None:
        self.handling.observe(seconds)
        child = self.handled.get(code)
        if child is None:
            child = self.handled[code] = metrics.GRPC_HANDLED.labels(*self.labels, code.name)
        child.inc()
        metrics.record_outcome(call, code)


class Counters:
    """MethodCounters by (path, kind); only known methods are kept (callers choose unknown paths)."""

    def __init__(self) -> None:
        self._methods: dict[tuple[str, str], MethodCounters] = {}

    def of(self, path: str, kind: str) -> MethodCounters:
        found = self._methods.get((path, kind))
        if found is None:
            service, method = method_labels(path)
            found = MethodCounters(kind, service, method)
            if service != UNKNOWN:
                self._methods[(path, kind)] = found
        return found
