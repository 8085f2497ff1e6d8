"""API keys on every front door of a real gateway process with a real worker: REST, the OpenAI SDK, gRPC.

The gateway's own log output is then scanned: no key and no Authorization value may appear in it.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import openai
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.config import key_digest
from shared.proto import embedding_pb2 as pb
from shared.proto import embedding_pb2_grpc as pb_grpc
from tests.support.http import call, wait_ready
from tests.support.processes import GatewayProcess, WorkerProcess, free_port

# Distinctive strings, so a scan of the log cannot miss them.
KEYS = {"reader": "rk-Zq81-reader-secret", "writer": "wk-Hy27-writer-secret", "ops": "ak-Lp55-admin-secret"}
SCOPES = {"reader": ["read"], "writer": ["write"], "ops": ["read", "write", "admin"]}
WRONG = "xk-Mm00-not-a-key"


class Front:
    """The gateway process and where to reach it."""

    def __init__(self, proc: GatewayProcess, grpc_port: int, keys_file: Path) -> None:
        self.proc = proc
        self.url = proc.url
        self.grpc_target = f"127.0.0.1:{grpc_port}"
        self.keys_file = keys_file


@pytest.fixture(scope="module")
def front(zmq_endpoint: str, minilm_worker: WorkerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    tmp = tmp_path_factory.mktemp("auth")
    records = {name: {"name": name, "sha256": key_digest(KEYS[name]), "scopes": SCOPES[name]} for name in KEYS}
    # Two keys in the YAML, one in a JSON-lines keys file: both sources reach the running gateway.
    (tmp / "keys.jsonl").write_text(json.dumps(records["ops"]) + "\n")
    config = {"auth": {"keys": [records["reader"], records["writer"]], "keys_file": str(tmp / "keys.jsonl")}}
    (tmp / "akidb.yaml").write_text(json.dumps(config))
    grpc_port = free_port()
    proc = GatewayProcess(
        zmq_endpoint,
        str(tmp / "data"),
        *("--config", str(tmp / "akidb.yaml"), "--set", "logging.format=json"),
        *("--set", "server.grpc_enabled=true", "--set", f"server.grpc_port={grpc_port}"),
    )
    try:
        wait_ready(proc, proc.url)
        yield Front(proc, grpc_port, tmp / "keys.jsonl")
    finally:
        proc.stop()


def test_rest_no_key_wrong_key_read_key_writing_and_an_admin_key(front: Front) -> None:
    status, headers, body = call(front.url, "POST", "/embed", body={"texts": ["hi"]})
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert body["error"]["code"] == "unauthorized"

    status, headers, body = call(front.url, "POST", "/embed", key=WRONG, body={"texts": ["hi"]})
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert WRONG not in json.dumps(body)

    status, _, body = call(front.url, "POST", "/embed", key=KEYS["reader"], body={"texts": ["hi"]})
    assert status == 200 and len(body["embeddings"][0]) == 384

    status, _, body = call(front.url, "POST", "/collections", key=KEYS["reader"], body={"name": "notes"})
    assert status == 403 and body["error"]["code"] == "forbidden" and "'admin'" in body["error"]["message"]

    status, _, body = call(front.url, "POST", "/collections", key=KEYS["ops"], body={"name": "notes"})
    assert status == 201, body
    doc = {"id": "d1", "text": "the cat sat on the mat"}
    status, _, body = call(front.url, "POST", "/collections/notes/documents", key=KEYS["reader"], body=doc)
    assert status == 403 and "'write'" in body["error"]["message"]
    status, _, body = call(front.url, "POST", "/collections/notes/documents", key=KEYS["writer"], body=doc)
    assert status == 201, body
    # The writer key holds write only: reading is another scope.
    assert call(front.url, "GET", "/collections/notes/documents/d1", key=KEYS["writer"])[0] == 403
    status, _, body = call(front.url, "POST", "/collections/notes/search", key=KEYS["reader"], body={"query": "cat"})
    assert status == 200 and body["results"][0]["id"] == "d1"
    assert call(front.url, "DELETE", "/collections/notes", key=KEYS["writer"])[0] == 403
    assert call(front.url, "DELETE", "/collections/notes", key=KEYS["ops"])[0] == 200

    for path in ("/health", "/ready"):
        assert call(front.url, "GET", path)[0] == 200, path
    # /metrics names every collection: a key with read, not a stranger (unless auth.open_metrics).
    assert call(front.url, "GET", "/metrics")[0] == 401
    assert call(front.url, "GET", "/metrics", key=KEYS["reader"])[0] == 200


def test_the_openai_sdk_sends_its_api_key_unchanged(front: Front) -> None:
    client = openai.OpenAI(base_url=front.url + "/v1", api_key=KEYS["reader"], max_retries=0)
    out = client.embeddings.create(model="all-MiniLM-L6-v2", input=["one", "two"])
    assert len(out.data) == 2 and len(out.data[0].embedding) == 384
    assert [m.id for m in client.models.list()] == ["all-MiniLM-L6-v2"]

    stranger = openai.OpenAI(base_url=front.url + "/v1", api_key=WRONG, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        stranger.embeddings.create(model="all-MiniLM-L6-v2", input="x")
    assert err.value.status_code == 401 and WRONG not in str(err.value)
    writer = openai.OpenAI(base_url=front.url + "/v1", api_key=KEYS["writer"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError, match="'read'"):
        writer.embeddings.create(model="all-MiniLM-L6-v2", input="x")


def test_grpc_with_and_without_the_authorization_metadata(front: Front) -> None:
    with grpc.insecure_channel(front.grpc_target) as channel:
        stub = pb_grpc.EmbeddingServiceStub(channel)
        request = pb.EmbeddingRequest(texts=["hello"])
        with pytest.raises(grpc.RpcError) as missing:
            stub.Embed(request, timeout=30)
        assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as wrong:
            stub.Embed(request, timeout=30, metadata=[("authorization", f"Bearer {WRONG}")])
        assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as denied:
            stub.GetModelInfo(
                pb.ModelInfoRequest(), timeout=30, metadata=[("authorization", f"Bearer {KEYS['writer']}")]
            )
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED and "'read'" in (denied.value.details() or "")
        trailers = dict(denied.value.trailing_metadata() or ())
        assert trailers["akidb-error-code"] == "forbidden"

        resp = stub.Embed(request, timeout=30, metadata=[("authorization", f"Bearer {KEYS['reader']}")])
        assert resp.dimension == 384 and len(resp.embeddings) == 1
        # Health stays open, as /health and /ready do.
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_the_gateway_log_names_keys_but_never_holds_one(front: Front) -> None:
    # This test's own calls, so it holds alone too: a refusal of each kind and an admin action.
    call(front.url, "GET", "/collections", key=WRONG)
    call(front.url, "POST", "/collections", key=KEYS["reader"], body={"name": "audit"})
    call(front.url, "POST", "/collections", key=KEYS["ops"], body={"name": "audit"})
    call(front.url, "DELETE", "/collections/audit", key=KEYS["ops"])
    with grpc.insecure_channel(front.grpc_target) as channel, pytest.raises(grpc.RpcError):
        pb_grpc.EmbeddingServiceStub(channel).Embed(
            pb.EmbeddingRequest(texts=["x"]), timeout=30, metadata=[("authorization", f"Bearer {WRONG}")]
        )
    output = front.proc.output()
    for secret in [*KEYS.values(), WRONG, "Bearer"]:
        assert secret not in output, f"{secret!r} appears in the gateway log"
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    audit = [(e["event"], e["key"], e["outcome"]) for e in lines if e["event"] in ("auth_refused", "admin_action")]
    assert ("auth_refused", "anonymous", 401) in audit
    assert ("auth_refused", "reader", 403) in audit
    assert ("admin_action", "ops", 201) in audit and ("admin_action", "ops", 200) in audit
    assert ("auth_refused", "anonymous", "UNAUTHENTICATED") in audit
    assert all(e["remote"] for e in lines if e["event"] == "auth_refused")
    assert not any(e["event"] == "auth_disabled" for e in lines)


def test_keys_are_read_from_both_sources(front: Front) -> None:
    # `ops` exists only in the keys file; `reader` only in the YAML.
    assert call(front.url, "GET", "/collections", key=KEYS["ops"])[0] == 200
    assert call(front.url, "GET", "/collections", key=KEYS["reader"])[0] == 200
    assert Path(front.proc.log.name).exists()


def test_sighup_brings_in_a_scoped_key_and_takes_it_away_on_rest_and_grpc(front: Front) -> None:
    scoped = "sk-Qa19-team-a-secret"
    record = {"name": "team-a", "sha256": key_digest(scoped), "scopes": ["read"], "collections": ["team-a-*"]}
    original = front.keys_file.read_text()

    def rewrite(text: str) -> None:
        staged = front.keys_file.with_suffix(".new")
        staged.write_text(text)
        staged.replace(front.keys_file)
        os.kill(front.proc.pid, signal.SIGHUP)

    def until(status: int) -> None:
        deadline = time.monotonic() + 30  # a guard for a broken test: the re-read takes well under a second
        while call(front.url, "GET", "/collections", key=scoped)[0] != status:
            assert time.monotonic() < deadline, f"GET /collections never answered {status} to the scoped key"
            time.sleep(0.05)

    rewrite(original + json.dumps(record) + "\n")
    try:
        until(200)
        status, _, body = call(front.url, "POST", "/embed", key=scoped, body={"texts": ["hi"]})
        assert status == 200 and len(body["embeddings"][0]) == 384  # embedding is bound to no collection
        status, _, body = call(front.url, "GET", "/collections/notes", key=scoped)
        assert status == 403 and "'team-a-*'" in body["error"]["message"]
        with grpc.insecure_channel(front.grpc_target) as channel:
            stub = pb_grpc.EmbeddingServiceStub(channel)
            auth = [("authorization", f"Bearer {scoped}")]
            assert stub.Embed(pb.EmbeddingRequest(texts=["hi"]), timeout=30, metadata=auth).dimension == 384
    finally:
        rewrite(original)
    until(401)
    with grpc.insecure_channel(front.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as gone:
            pb_grpc.EmbeddingServiceStub(channel).Embed(
                pb.EmbeddingRequest(texts=["hi"]), timeout=30, metadata=[("authorization", f"Bearer {scoped}")]
            )
        assert gone.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert call(front.url, "GET", "/collections", key=KEYS["ops"])[0] == 200  # the file's other key stayed
