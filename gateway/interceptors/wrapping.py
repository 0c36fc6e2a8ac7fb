"""Wrap an RpcMethodHandler's behaviour, whatever its shape, so interceptors stay short."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

Unary = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
Streaming = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]


def wrap(handler: grpc.RpcMethodHandler, unary: Callable[[Unary], Unary],
         streaming: Callable[[Streaming], Streaming],
         deserializer: Callable[[Callable[[bytes], Any] | None], Callable[[bytes], Any] | None] | None = None,
         ) -> grpc.RpcMethodHandler:
    """A copy of `handler` whose unary-response behaviour goes through `unary` and whose
    streaming-response behaviour goes through `streaming`. Client-streaming calls are wrapped
    the same way: the request argument is then the request iterator."""
    changes: dict[str, Any] = {}
    for name in ("unary_unary", "stream_unary"):
        if getattr(handler, name) is not None:
            changes[name] = unary(getattr(handler, name))
    for name in ("unary_stream", "stream_stream"):
        if getattr(handler, name) is not None:
            changes[name] = streaming(getattr(handler, name))
    if deserializer is not None:
        changes["request_deserializer"] = deserializer(handler.request_deserializer)
    return handler._replace(**changes)  # type: ignore[attr-defined]
