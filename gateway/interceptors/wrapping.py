"""Wrap an RpcMethodHandler's behaviour, whatever its shape, so interceptors stay short."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import grpc

Unary = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
Streaming = Callable[[Any, grpc.aio.ServicerContext], AsyncGenerator[Any, None]]


def wrap(handler: grpc.RpcMethodHandler, unary: Callable[[Unary], Unary],
         streaming: Callable[[Streaming], Streaming | Unary],
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


def messages(behaviour: Streaming, request: Any, context: grpc.aio.ServicerContext
             ) -> aclosing[AsyncGenerator[Any, None]]:
    """The inner layer's messages, closed when this layer stops for any reason: `async for` alone
    leaves a generator suspended (and its billing call, its audit close, its memory) until the
    garbage collector finds it, which for a cancelled stream may be never. Use as
    `async with messages(behaviour, request, context) as inner: async for m in inner: ...`."""
    return aclosing(behaviour(request, context))


def writer(streaming: Streaming) -> Unary:
    """gRPC's write() form of a streaming handler, for the outermost layer. With a generator
    handler, a client's cancellation that lands while gRPC is sending a message never reaches the
    generators; here it arrives inside the handler, every layer is closed in order, and a
    message counts as sent once `write` has returned."""

    async def call(request: Any, context: grpc.aio.ServicerContext) -> None:
        async with messages(streaming, request, context) as inner:
            async for message in inner:
                await context.write(message)

    return call
