"""The OpenBLAS re-exec: when it happens, and the environment it re-executes with."""

from __future__ import annotations

import sys

import pytest

from worker import blas


def test_preload_env_puts_openblas_first_and_marks_the_reexec() -> None:
    env = blas.preload_env({"LD_PRELOAD": "/x/libfoo.so", "PATH": "/bin"}, "/lib/libblas.so.3", threads=1)
    assert env["LD_PRELOAD"] == "/lib/libblas.so.3:/x/libfoo.so"
    assert env[blas.REEXEC_FLAG] == "1"
    assert env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["PATH"] == "/bin"


def test_preload_env_leaves_openblas_threads_alone_by_default() -> None:
    env = blas.preload_env({}, "/lib/libblas.so.3", threads=0)
    assert env["LD_PRELOAD"] == "/lib/libblas.so.3"
    assert "OPENBLAS_NUM_THREADS" not in env


def test_no_reexec_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blas.sys, "platform", "darwin")
    assert blas.reexec_with_openblas({}, ["akidb-worker"], 0) == "not-linux"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the re-exec only exists on Linux")
def test_no_second_reexec(monkeypatch: pytest.MonkeyPatch) -> None:
    """The flag stops a loop when the preload did not take (e.g. a library that fails to map)."""
    monkeypatch.setattr(blas.os, "execve", pytest.fail)
    assert blas.reexec_with_openblas({blas.REEXEC_FLAG: "1"}, ["akidb-worker"], 0) == "already-loaded"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the re-exec only exists on Linux")
def test_missing_openblas_is_reported_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blas, "CANDIDATES", ("/nonexistent/libblas.so.3",))
    monkeypatch.setattr(blas.os, "execve", pytest.fail)
    assert blas.find_openblas() is None
    assert blas.reexec_with_openblas({}, ["akidb-worker"], 0) == "not-found"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the re-exec only exists on Linux")
def test_reexec_runs_the_worker_module_with_the_same_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blas, "CANDIDATES", (sys.executable,))  # any existing file stands in for the library
    monkeypatch.setattr(blas, "openblas_loaded", lambda: False)
    calls = []
    monkeypatch.setattr(blas.os, "execve", lambda path, argv, env: calls.append((path, argv, env)))
    blas.reexec_with_openblas({"HOME": "/root"}, ["/usr/bin/akidb-worker", "--model", "minilm"], 2)
    (path, argv, env) = calls[0]
    assert path == sys.executable
    assert argv == [sys.executable, "-m", "worker", "--model", "minilm"]
    assert env["LD_PRELOAD"] == sys.executable and env["OPENBLAS_NUM_THREADS"] == "2" and env["HOME"] == "/root"
