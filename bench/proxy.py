"""A bare pass-through gRPC proxy with no rules: the limit of one Python grpc.aio hop.

It forwards the raw bytes of every method under a prefix (the billing contract by default) to one
upstream, unary and server-streaming alike, and decodes nothing. Whether a method streams is read
from the hallgate protobuf descriptors; anything else is treated as unary. With --stream-out it
answers unary methods as a one-message server stream: the gateway's shape (a unary billing call
in, a stream out) without any of its rules.

    python -m bench.proxy --listen 127.0.0.1:50070 --upstream 127.0.0.1:50061 [--stream-out]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from gateway.runtime import event_loop
from hallgate_pb.billing.v1 import billing_pb2
from hallgate_pb.v1 import kiosk_pb2

BILLING_PREFIX = "/hallgate.billing.v1.BillingService/"
STREAMING = {f"/{service.full_name}/{method.name}"
             for proto in (billing_pb2.DESCRIPTOR, kiosk_pb2.DESCRIPTOR)
             for service in proto.services_by_name.values()
             for method in service.methods if method.server_streaming}


class Forwarder(grpc.GenericRpcHandler):
    """Raw bytes in, raw bytes out; the upstream's status goes back unchanged."""

    def __init__(self, upstream: grpc.aio.Channel, prefix: str, stream_out: bool = False) -> None:
        self.upstream = upstream
        self.prefix = prefix
        self.stream_out = stream_out
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if not method.startswith(self.prefix):
            return None
        handler = self._handlers.get(method)
        if handler is None:
            if method in STREAMING:
                handler = grpc.unary_stream_rpc_method_handler(self._streaming(method))
            elif self.stream_out:
                handler = grpc.unary_stream_rpc_method_handler(self._as_stream(method))
            else:
                handler = grpc.unary_unary_rpc_method_handler(self._unary(method))
            self._handlers[method] = handler
        return handler

    def _unary(self, method: str) -> Callable[[bytes, Any], Awaitable[bytes]]:
        call = self.upstream.unary_unary(method)

        async def forward(request: bytes, context: Any) -> bytes:
            try:
                response: bytes = await call(request, timeout=context.time_remaining())
            except grpc.aio.AioRpcError as e:
                await context.abort(e.code(), e.details() or "")
                raise
            return response

        return forward

    def _streaming(self, method: str) -> Callable[[bytes, Any], AsyncIterator[bytes]]:
        call = self.upstream.unary_stream(method)

        async def forward(request: bytes, context: Any) -> AsyncIterator[bytes]:
            try:
                async for message in call(request, timeout=context.time_remaining()):
                    yield message
            except grpc.aio.AioRpcError as e:
                await context.abort(e.code(), e.details() or "")

        return forward

    def _as_stream(self, method: str) -> Callable[[bytes, Any], AsyncIterator[bytes]]:
        unary = self._unary(method)

        async def forward(request: bytes, context: Any) -> AsyncIterator[bytes]:
            yield await unary(request, context)

        return forward


async def serve(listen: str, upstream: str, prefix: str = BILLING_PREFIX, stream_out: bool = False) -> None:
    """Serve until SIGTERM or SIGINT."""
    channel = grpc.aio.insecure_channel(upstream)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([Forwarder(channel, prefix, stream_out)])
    if server.add_insecure_port(listen) == 0:
        raise OSError(f"proxy cannot listen on {listen}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"proxy {listen} -> {upstream} ({prefix}*)", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop(1)
        await channel.close()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.proxy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", required=True, help="host:port to serve on (loopback)")
    p.add_argument("--upstream", required=True, help="host:port to forward to")
    p.add_argument("--prefix", default=BILLING_PREFIX, help=f"methods to forward [{BILLING_PREFIX}]")
    p.add_argument("--stream-out", action="store_true", help="answer unary methods as a one-message stream")
    args = p.parse_args()
    event_loop.run(serve(args.listen, args.upstream, args.prefix, args.stream_out))  # the gateway's loop


if __name__ == "__main__":
    main()
