"""The `akidb` console script, run as a process against a real gateway and worker."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from akidb_client import AkiDB

from tests.server import Server

BIN = Path(sys.executable).parent


def akidb(server: Server, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("akidb", path=str(BIN))
    assert exe, f"akidb is not installed in {BIN}; run client/scripts/setup.sh"
    env = {"AKIDB_URL": server.url, "PATH": str(BIN)}
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300, env=env, input=stdin)


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_collections_commands(server: Server, name: str) -> None:
    out = akidb(server, "collections", "create", name, "--metric", "ip")
    assert out.returncode == 0, out.stderr
    listed = akidb(server, "collections", "list")
    line = next(row for row in listed.stdout.splitlines() if row.startswith(name))
    assert "384" in line and "ip" in line
    info = json.loads(akidb(server, "collections", "info", name).stdout)
    assert info["name"] == name and info["document_count"] == 0
    refused = akidb(server, "collections", "delete", name)
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert akidb(server, "collections", "delete", name, "--yes").returncode == 0
    missing = akidb(server, "collections", "info", name)
    assert missing.returncode == 2 and "collection_not_found" in missing.stderr


def test_import_reports_bad_rows_with_line_numbers_and_resumes(server: Server, name: str, tmp_path: Path) -> None:
    rows: list[object] = [{"id": f"r{i}", "text": f"row number {i}", "lang": "en", "n": i} for i in range(1, 41)]
    rows[2] = "{not json"
    rows[4] = {"id": "short", "vector": [0.5, 0.5]}
    rows[6] = {"id": "empty"}
    rows.insert(9, "")  # a blank line is not a row (line numbers still count it)
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    out = akidb(server, "import", str(path), "--collection", name, "--create", "--batch-size", "8", "--no-progress")
    assert out.returncode == 1
    assert "imported 37, skipped 0 (already stored), failed 3" in out.stdout
    err = out.stderr.splitlines()
    assert err[0].startswith("line 3: unreadable_row: not JSON")
    assert err[1] == "line 5: id 'short': dimension_mismatch: Vector dimension mismatch: got 2, expected 384" or (
        err[1].startswith("line 5: id 'short': dimension_mismatch:")
    )
    assert err[2].startswith("line 7: id 'empty': unreadable_row: the row has neither 'text' nor 'vector'")
    with AkiDB(server.url) as db:
        doc = db.collection(name).get("r11")
        assert doc.metadata == {"lang": "en", "n": 11} and doc.text == "row number 11"
    rows[4] = {"id": "short", "text": "now with text"}
    rows[2] = {"id": "r3", "text": "fixed"}
    rows[6] = {"id": "empty", "text": "fixed too"}
    write_jsonl(path, rows)
    again = akidb(server, "import", str(path), "--collection", name, "--resume", "--no-progress")
    assert again.returncode == 0, again.stderr
    assert "imported 3, skipped 37 (already stored), failed 0" in again.stdout


def test_import_shows_a_progress_bar(server: Server, name: str, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": f"t{i}"} for i in range(50)])
    out = akidb(server, "import", str(path), "-c", name, "--create", "--batch-size", "10")
    assert out.returncode == 0
    assert "50/50" in out.stderr and "doc/s" in out.stderr


def test_import_csv_and_parquet_with_field_mapping(server: Server, name: str, tmp_path: Path) -> None:
    csv_path = tmp_path / "d.csv"
    csv_path.write_text('key,body,topic,junk\nk1,"Paris, the capital of France",geo,x\nk2,Machine learning,ai,y\n')
    args = ["--id-field", "key", "--text-field", "body", "--metadata-fields", "topic", "--no-progress"]
    out = akidb(server, "import", str(csv_path), "-c", name, "--create", *args)
    assert out.returncode == 0, out.stderr
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    vec = np.linspace(-1, 1, 384).astype(np.float32)
    table = pa.table({"key": ["k3"], "body": ["from parquet"], "topic": ["pq"], "emb": [vec.tolist()]})
    pq.write_table(table, tmp_path / "d.parquet")
    out = akidb(server, "import", str(tmp_path / "d.parquet"), "-c", name, *args, "--vector-field", "emb")
    assert out.returncode == 0, out.stderr
    with AkiDB(server.url) as db:
        col = db.collection(name)
        assert col.get("k1").metadata == {"topic": "geo"} and col.get("k1").text == "Paris, the capital of France"
        k3 = col.get("k3", include_vector=True)
        assert not k3.vector_generated and np.allclose(k3.vector, vec / np.linalg.norm(vec), atol=1e-6)


DOCS = [
    {"id": "a", "text": "Grüße aus Köln \U0001f600", "metadata": {"n": 1.5, "tags": ["x", "y"], "nested": {"k": None}}},
    {"id": "b c?#%", "text": "no metadata"},
    {"id": "v", "vector": np.linspace(-1, 1, 384).tolist(), "metadata": {"only": "vector"}},
    {"text": "generated id", "metadata": {}},
    *({"id": f"n{i}", "text": f"number {i}", "metadata": {"i": i}} for i in range(9)),
]


def round_trip(server: Server, source: str, copy: str, tmp_path: Path, *export_args: str) -> tuple[str, str]:
    """Export `source`, import the file into `copy` (in several concurrent batches), export `copy`."""
    first, second = tmp_path / f"{source}.jsonl", tmp_path / f"{copy}.jsonl"
    assert akidb(server, "export", "-c", source, "-o", str(first), *export_args).returncode == 0
    imported = akidb(server, "import", str(first), "-c", copy, "--batch-size", "3", "--no-progress")
    assert imported.returncode == 0, imported.stderr
    assert akidb(server, "export", "-c", copy, "-o", str(second), *export_args).returncode == 0
    # Concurrent batches may commit in another order: compare the documents, not the order.
    return "".join(sorted(first.read_text().splitlines(True))), "".join(sorted(second.read_text().splitlines(True)))


def test_export_then_import_round_trips_exactly(server: Server, name: str, tmp_path: Path) -> None:
    with AkiDB(server.url) as db:
        # ip stores vectors exactly as given (a cosine collection re-normalises them on import,
        # which may move the last bit of a float32).
        db.collections.create(name, metric="ip")
        db.collections.create(name + "-copy", metric="ip")
        db.collection(name).add(DOCS)
    before, after = round_trip(server, name, name + "-copy", tmp_path, "--vectors")
    assert before == after and len(before.splitlines()) == len(DOCS)
    assert '"metadata": {}' in before and '"metadata": null' in before and "\\u" not in before


def test_export_without_vectors_round_trips_texts_re_embedded(server: Server, name: str, tmp_path: Path) -> None:
    with AkiDB(server.url) as db:
        db.collections.create(name)
        db.collections.create(name + "-copy")
        db.collection(name).add([d for d in DOCS if "text" in d])
        before, after = round_trip(server, name, name + "-copy", tmp_path)
        assert before == after and '"vector"' not in before
        original = db.collection(name).get("a", include_vector=True).vector
        again = db.collection(name + "-copy").get("a", include_vector=True).vector
        assert original is not None and again is not None and np.allclose(original, again, atol=1e-5)


def test_search_table_and_json(server: Server, name: str, tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"id": "ml", "text": "Machine learning is a subset of artificial intelligence", "topic": "ai"},
            {"id": "paris", "text": "Paris is the capital of France", "topic": "geo"},
        ],
    )
    assert akidb(server, "import", str(path), "-c", name, "--create", "--no-progress").returncode == 0
    out = akidb(server, "search", "What is machine learning?", "-c", name, "-k", "2")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["#", "score", "id", "text", "metadata"]
    assert lines[2].split()[2] == "ml" and "query embedded" in lines[-1]
    as_json = json.loads(
        akidb(server, "search", "capital", "-c", name, "--json", "--filter", '{"topic": "geo"}').stdout
    )
    assert [r["id"] for r in as_json["results"]] == ["paris"] and as_json["query_embedded"] is True


def test_embed(server: Server) -> None:
    out = akidb(server, "embed", "hello world", "second text")
    assert out.returncode == 0 and "dimension 384" in out.stdout and len(out.stdout.splitlines()) == 3
    as_json = json.loads(akidb(server, "embed", "--json", stdin="one\ntwo\n").stdout)
    assert np.asarray(as_json["embeddings"]).shape == (2, 384)


def test_the_cli_moves_past_a_gateway_that_is_down(server: Server, name: str) -> None:
    with socket.socket() as s:  # a port nothing listens on: the first gateway refuses connections
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    exe = shutil.which("akidb", path=str(BIN))
    assert exe
    env = {"PATH": str(BIN)}
    out = subprocess.run(
        [exe, "--url", f"{dead},{server.url}", "collections", "create", name],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    with AkiDB(f"{dead},{server.url}") as db:
        assert db.collections.get(name).name == name
        db.collection(name).upsert([{"id": "a", "text": "over the other gateway"}])
        assert db.collection(name).count() == 1
        assert db.gateways.current == server.url
