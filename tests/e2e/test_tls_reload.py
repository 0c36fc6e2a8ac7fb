"""The server's certificate, key and client CA bundle are re-read when the files change, without a
restart (gateway/transport/tls_files.py): a new connection gets the new certificate and the new
bundle decides which terminals get in; files that do not make a valid set keep the old ones."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from structlog.testing import capture_logs

from adapters.dev_pki import Issued, issue, make_ca
from gateway.transport.tls_files import InvalidTlsFiles, TlsFiles, read_material
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc
from tests.support.subscribers import ORDINARY
from tests.support.tls import TRUST_DOMAIN
from tests.support.waiting import wait_for

RELOAD = 0.1


def write(path: Path, data: bytes) -> None:
    """As a renewal does: a new file renamed over the old one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Hall:
    """Three CAs, a server certificate from CA1 and one from CA2, a kiosk certificate from each CA."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.cas = [make_ca(f"hall CA {i}") for i in (1, 2, 3)]
        self.server = [issue(ca, "hallgate", server=True) for ca in self.cas[:2]]
        self.kiosks = [issue(ca, f"kiosk {i}", uri=f"spiffe://{TRUST_DOMAIN}/hall/H001/kiosk/K0{i}")
                       for i, ca in enumerate(self.cas, 1)]
        self.cert, self.key, self.bundle = directory / "tls.crt", directory / "tls.key", directory / "ca.crt"

    def serve_with(self, server: Issued, cas: list[Issued]) -> None:
        write(self.key, server.key_pem)
        write(self.cert, server.cert_pem)
        write(self.bundle, b"".join(ca.cert_pem for ca in cas))

    def channel(self, trust: Issued, kiosk: Issued, port: int) -> grpc.aio.Channel:
        """A channel of its own (its own connection), trusting only `trust`, presenting `kiosk`."""
        creds = grpc.ssl_channel_credentials(trust.cert_pem, kiosk.key_pem, kiosk.cert_pem)
        return grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.use_local_subchannel_pool", 1)])


async def connects(hall: Hall, trust: Issued, kiosk: Issued, port: int) -> bool:
    """Whether a new connection completes the mutual TLS handshake (a health check answers)."""
    async with hall.channel(trust, kiosk, port) as channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.aio.AioRpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE, e
            return False
    return True


@pytest.fixture
def hall(tmp_path: Path) -> Hall:
    h = Hall(tmp_path)
    h.serve_with(h.server[0], [h.cas[0], h.cas[2]])
    return h


async def test_renewed_certificate_and_ca_bundle_apply_to_new_connections_without_restart(
        make_gateway: Callable[..., Awaitable[Any]], hall: Hall) -> None:
    ca1, ca2, _ = hall.cas
    k1, k2, k3 = hall.kiosks
    gw = await make_gateway(tls_cert=str(hall.cert), tls_key=str(hall.key), tls_client_ca=str(hall.bundle),
                            tls_reload=RELOAD, max_connection_age=0)
    port = gw.port
    assert await connects(hall, ca1, k1, port)  # cert A from CA1; CA1 and CA3 in the bundle
    assert await connects(hall, ca1, k3, port)
    assert not await connects(hall, ca2, k1, port)  # the server does not present a CA2 certificate yet
    assert not await connects(hall, ca1, k2, port)  # nor does it accept a CA2 terminal
    old = hall.channel(ca1, k1, port)  # a connection made before the renewal
    kiosk = kiosk_pb2_grpc.KioskServiceStub(old)
    await kiosk.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY), timeout=5)

    with capture_logs() as logged:
        hall.serve_with(hall.server[1], [ca2, ca1])  # cert B from CA2; CA3 dropped from the bundle
        await wait_for(lambda: connects(hall, ca2, k2, port), limit=5, what="the new certificate and bundle")
    assert any(e["event"] == "tls_reloaded" for e in logged), logged
    assert not await connects(hall, ca1, k1, port)  # a new connection sees cert B only
    assert await connects(hall, ca2, k1, port)  # CA1 still in the bundle
    assert not await connects(hall, ca2, k3, port)  # CA3 was dropped
    # The connection made before keeps working (its TLS session stays as it was made).
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await kiosk.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY), timeout=5)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # answered (throttled), not cut off
    await old.close()

    # A renewal half written, a key that does not match: the last good configuration stays.
    with capture_logs() as logged:
        hall.cert.write_bytes(hall.server[0].cert_pem[:200])
        # (the files are looked at when a handshake asks: connect while waiting)
        await wait_for(lambda: rejected(hall, port, logged), limit=5, what="the rejection")
        assert await connects(hall, ca2, k2, port) and not await connects(hall, ca1, k1, port)
        write(hall.cert, hall.server[0].cert_pem)  # cert A with key B
        await wait_for(lambda: rejected(hall, port, logged, 2), limit=5, what="the second rejection")
        assert await connects(hall, ca2, k2, port)
    assert all(e["event"] != "tls_reloaded" for e in logged)
    # and once the files are right again, they are used
    write(hall.key, hall.server[0].key_pem)
    await wait_for(lambda: connects(hall, ca1, k1, port), limit=5, what="the repaired files")


async def rejected(hall: Hall, port: int, logged: list[MutableMapping[str, Any]], times: int = 1) -> bool:
    """Whether the files were rejected `times` times (each connection attempt lets them be looked at);
    a connection trusting CA2 works all along."""
    assert await connects(hall, hall.cas[1], hall.kiosks[1], port)
    return sum(e["event"] == "tls_reload_rejected" for e in logged) >= times


def test_files_that_make_no_valid_set_are_refused_at_start(hall: Hall) -> None:
    write(hall.key, hall.server[1].key_pem)  # not cert A's key
    with pytest.raises(InvalidTlsFiles, match="does not belong"):
        read_material(hall.cert, hall.key, hall.bundle)
    with pytest.raises(RuntimeError, match="TLS: key"):
        TlsFiles(hall.cert, hall.key, hall.bundle)
    write(hall.bundle, b"")
    write(hall.key, hall.server[0].key_pem)
    with pytest.raises(InvalidTlsFiles, match="client CA bundle"):
        read_material(hall.cert, hall.key, hall.bundle)


def test_the_files_are_looked_at_no_more_often_than_asked(hall: Hall) -> None:
    now = [0.0]
    files = TlsFiles(hall.cert, hall.key, hall.bundle, every=5, clock=lambda: now[0])
    hall.serve_with(hall.server[1], [hall.cas[1]])
    assert files.check() is None  # not yet: at most every 5 s
    now[0] = 5.0
    renewed = files.check()
    assert renewed is not None and renewed.chain == hall.server[1].cert_pem and files.generation == 1
    now[0] = 10.0
    os.utime(hall.cert)  # touched, not changed
    assert files.check() is None and files.generation == 1
