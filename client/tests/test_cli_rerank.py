"""`akidb rerank` and `akidb search --rerank`, run as a process against the fake server of tests/fake.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake import MODEL, QUERY, TEXTS, FakeAkiDB

BIN = Path(sys.executable).parent


def akidb(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("akidb", path=str(BIN))
    assert exe, f"akidb is not installed in {BIN}; run client/scripts/setup.sh"
    env = {"AKIDB_URL": url, "PATH": str(BIN)}
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, env=env, input=stdin)


def test_rerank_documents_as_arguments_prints_a_table(fake: FakeAkiDB) -> None:
    out = akidb(fake.url, "rerank", QUERY, *TEXTS)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["#", "score", "index", "document"]
    assert lines[2].split()[:3] == ["1", "1.0000", "2"] and lines[2].endswith("What is machine learning?")
    assert [line.split()[2] for line in lines[2:5]] == ["2", "1", "0"]
    assert lines[-1].startswith(f"3 of 3 documents, model {MODEL}, ")
    assert fake.requests[0][1] == {"query": QUERY, "documents": TEXTS, "return_documents": False}


def test_rerank_json_top_n_and_model(fake: FakeAkiDB) -> None:
    out = akidb(fake.url, "rerank", QUERY, *TEXTS, "--top-n", "2", "--model", MODEL, "--json")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert [(r["index"], r["document"]) for r in body["results"]] == [(2, TEXTS[2]), (1, TEXTS[1])]
    assert body["model"] == MODEL and body["usage"]["total_tokens"] > 0
    assert fake.requests[0][1]["top_n"] == 2 and fake.requests[0][1]["model"] == MODEL


def test_rerank_reads_documents_from_a_file_or_stdin(fake: FakeAkiDB, tmp_path: Path) -> None:
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(TEXTS) + "\n\n")  # a blank line is not a document
    from_file = akidb(fake.url, "rerank", QUERY, "--file", str(path), "--json")
    from_stdin = akidb(fake.url, "rerank", QUERY, "--json", stdin="\n".join(TEXTS) + "\n")
    dash = akidb(fake.url, "rerank", QUERY, "-f", "-", "--json", stdin="\n".join(TEXTS))
    assert from_file.returncode == from_stdin.returncode == dash.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout) == json.loads(from_stdin.stdout) == json.loads(dash.stdout)
    assert all(body["documents"] == TEXTS for _, body in fake.requests)


def test_rerank_errors_exit_2_with_the_reason(fake: FakeAkiDB, tmp_path: Path) -> None:
    missing = akidb(fake.url, "rerank", QUERY, "a doc", "--model", "nope")
    assert missing.returncode == 2 and "model_not_found" in missing.stderr and "nope" in missing.stderr
    none = akidb(fake.url, "rerank", QUERY, stdin="")
    assert none.returncode == 2 and "no documents to rerank" in none.stderr
    both = akidb(fake.url, "rerank", QUERY, "doc", "--file", str(tmp_path / "x"))
    assert both.returncode == 2 and "not both" in both.stderr
    bad_n = akidb(fake.url, "rerank", QUERY, "doc", "--top-n", "0")
    assert bad_n.returncode == 2 and "invalid_input" in bad_n.stderr
    assert len(fake.requests) == 2  # the two argument errors never reached the server


def test_search_with_rerank_shows_both_scores(fake: FakeAkiDB) -> None:
    options = ("-k", "2", "--mode", "hybrid", "--rerank", "--candidates", "4")
    out = akidb(fake.url, "search", QUERY, "-c", "notes", *options)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["#", "score", "retrieval", "id", "text", "metadata"]
    assert lines[2].split()[:4] == ["1", "1.0000", "0.7000", "what-ml"] and lines[-1].endswith("reranked")
    sent = fake.requests[0][1]
    assert sent["rerank"] == {"candidates": 4} and "ranks" in sent["include"] and sent["mode"] == "hybrid"
    as_json = json.loads(akidb(fake.url, "search", QUERY, "-c", "notes", "-k", "1", "--rerank", MODEL, "--json").stdout)
    assert as_json["results"][0]["retrieval_score"] == pytest.approx(0.7)
    assert fake.requests[1][1]["rerank"] == {"model": MODEL}
    plain = akidb(fake.url, "search", QUERY, "-c", "notes", "-k", "1")
    assert "rerank" not in fake.requests[2][1] and "mode" not in fake.requests[2][1] and "retrieval" not in plain.stdout
    alone = akidb(fake.url, "search", QUERY, "-c", "notes", "--candidates", "4")
    assert alone.returncode == 2 and "give --rerank too" in alone.stderr


def test_help_names_the_rerank_command() -> None:
    exe = shutil.which("akidb", path=str(BIN))
    assert exe
    out = subprocess.run([exe, "rerank", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--top-n" in out.stdout and "stdin" in out.stdout
