"""TLS on both front doors of a real gateway process: HTTPS and gRPC over TLS, verified against a test CA."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest
import trustme

from shared.proto import embedding_pb2 as pb
from shared.proto import embedding_pb2_grpc as pb_grpc
from tests.support.http import wait_ready
from tests.support.processes import GatewayProcess, WorkerProcess, free_port


class TlsGateway:
    def __init__(self, proc: GatewayProcess, grpc_port: int, ca: trustme.CA) -> None:
        self.proc = proc
        self.url = f"https://127.0.0.1:{proc.port}"
        self.grpc_target = f"127.0.0.1:{grpc_port}"
        self.client_context = ssl.create_default_context()
        ca.configure_trust(self.client_context)
        self.ca_pem = ca.cert_pem.bytes()


@pytest.fixture(scope="module")
def tls_gateway(
    zmq_endpoint: str, minilm_worker: WorkerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsGateway]:
    tmp: Path = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(tmp / "key.pem"))
    (tmp / "cert.pem").write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    grpc_port = free_port()
    sets = [
        f"server.tls_cert_file={tmp / 'cert.pem'}",
        f"server.tls_key_file={tmp / 'key.pem'}",
        "server.grpc_enabled=true",
        f"server.grpc_port={grpc_port}",
    ]
    proc = GatewayProcess(zmq_endpoint, str(tmp / "data"), *[a for s in sets for a in ("--set", s)])
    gw = TlsGateway(proc, grpc_port, ca)
    try:
        wait_ready(proc, gw.url, context=gw.client_context)
        yield gw
    finally:
        proc.stop()


async def test_https_round_trip_verified_against_the_ca(tls_gateway: TlsGateway) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            tls_gateway.url + "/embed", json={"texts": ["over tls"]}, ssl=tls_gateway.client_context
        ) as resp:
            assert resp.status == 200
            assert len((await resp.json())["embeddings"][0]) == 384
        # A client that does not trust the test CA refuses the certificate: the gateway really serves TLS.
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(tls_gateway.url + "/health", ssl=ssl.create_default_context())


async def test_grpc_over_tls_round_trip(tls_gateway: TlsGateway) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=tls_gateway.ca_pem)
    async with grpc.aio.secure_channel(tls_gateway.grpc_target, credentials) as channel:
        resp = await pb_grpc.EmbeddingServiceStub(channel).Embed(pb.EmbeddingRequest(texts=["over tls"]), timeout=60)
    assert resp.dimension == 384 and len(resp.embeddings) == 1


async def test_plain_requests_to_the_tls_ports_fail_cleanly(tls_gateway: TlsGateway) -> None:
    plain = tls_gateway.url.replace("https://", "http://")
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            with pytest.raises(aiohttp.ClientError):
                async with session.get(plain + "/health") as resp:
                    await resp.read()
    async with grpc.aio.insecure_channel(tls_gateway.grpc_target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.EmbeddingServiceStub(channel).Embed(pb.EmbeddingRequest(texts=["x"]), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    # Still serving, and nothing crashed on the way.
    assert tls_gateway.proc.proc.poll() is None
    async with (
        aiohttp.ClientSession() as session,
        session.get(tls_gateway.url + "/health", ssl=tls_gateway.client_context) as resp,
    ):
        assert resp.status == 200
    assert "Traceback" not in tls_gateway.proc.output()
