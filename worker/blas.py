"""OpenBLAS for MLX on Linux CPUs.

The mlx-cpu wheel bundles the reference BLAS (about 5.6 GFLOPS here); OpenBLAS does about
280. The dynamic linker lets a preloaded library's `sgemm_`/`cblas_sgemm` win, so the worker
re-executes itself once with LD_PRELOAD pointing at the system's OpenBLAS before MLX loads.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

# Debian/Ubuntu's libopenblas0-pthread, then Fedora/RHEL's openblas-serial/threads.
CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib64/libopenblasp.so.0",
    "/usr/lib64/libopenblas.so.0",
)
REEXEC_FLAG = "AKIDB_BLAS_REEXEC"


def find_openblas() -> str | None:
    """The first OpenBLAS library on this machine that exports the reference BLAS symbols."""
    return next((p for p in CANDIDATES if Path(p).exists()), None)


def openblas_loaded() -> bool:
    """Whether this process has OpenBLAS mapped (so MLX's sgemm calls land in it)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    # numpy's own copy (scipy_openblas) is mapped too but exports suffixed symbols that
    # MLX never calls, so only the system libraries count.
    return any(os.path.realpath(p) in maps for p in CANDIDATES if Path(p).exists())


def preload_env(environ: Mapping[str, str], library: str, threads: int) -> dict[str, str]:
    """The environment for the re-executed worker: OpenBLAS first in LD_PRELOAD."""
    env = dict(environ)
    existing = env.get("LD_PRELOAD", "")
    env["LD_PRELOAD"] = f"{library}:{existing}" if existing else library
    env[REEXEC_FLAG] = "1"
    if threads:
        env["OPENBLAS_NUM_THREADS"] = str(threads)
    return env


def reexec_with_openblas(environ: Mapping[str, str], argv: list[str], threads: int) -> str:
    """Re-execute this worker under OpenBLAS if needed. Returns why it did not (or never returns)."""
    if not sys.platform.startswith("linux"):
        return "not-linux"
    if environ.get(REEXEC_FLAG) or openblas_loaded():
        return "already-loaded"
    library = find_openblas()
    if library is None:
        return "not-found"
    env = preload_env(environ, library, threads)
    os.execve(sys.executable, [sys.executable, "-m", "worker", *argv[1:]], env)
    return "exec-failed"  # pragma: no cover - execve does not return
