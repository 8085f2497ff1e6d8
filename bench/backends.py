"""The x86 CPU benchmark (issue 6): every backend in-process, sentence-transformers as the baseline
in the same run, then the real gateway + workers.

    .venv/bin/python -m bench.backends                # the full run (minutes on 2 cores)
    .venv/bin/python -m bench.backends --quick        # a few seconds per figure, to prove it works

Writes bench/results/backends-<time>.json and prints a Markdown summary. The baseline runs with
--st-python (a venv with torch + sentence-transformers); torch is never imported here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import corpus, server
from worker import blas

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def run_json(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a bench child process and parse the one JSON line it prints last."""
    done = subprocess.run(
        cmd,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = (a64 * b64).sum(1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))
    return round(float(cos.min()), 7)


def gemm_gflops(threads: int) -> float:
    """fp32 GEMM throughput numpy's OpenBLAS reaches here now (a practical ceiling under today's load)."""
    code = (
        "import numpy as np,time;a=np.random.rand(2048,2048).astype(np.float32);a@a;"
        "t=time.perf_counter();[a@a for _ in range(5)];print(2*2048**3*5/(time.perf_counter()-t)/1e9)"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    return round(
        float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout),
        1,
    )


def in_process(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Each engine's raw speed and its parity with sentence-transformers over the same texts."""
    sizes = ["--n-short", str(args.n_short), "--n-bodies", str(args.n_bodies)]
    threads = ["--threads", str(args.threads)]
    model_path = str(server.model_folder())
    rows: dict[str, dict[str, Any]] = {}
    rows["sentence-transformers"] = run_json(
        [
            args.st_python,
            "-m",
            "bench.st_baseline",
            "--model-path",
            model_path,
            *sizes,
            *threads,
            "--out",
            str(tmp / "st.npy"),
        ]
    )
    reference = np.load(tmp / "st.npy")
    variants = [
        ("openvino f32", ["--backend", "openvino", "--precision", "f32"], {}),
        ("openvino bf16 (forced)", ["--backend", "openvino", "--precision", "bf16"], {}),
    ]
    openblas = blas.find_openblas()
    mlx_env = {"OPENBLAS_NUM_THREADS": str(args.threads), blas.REEXEC_FLAG: "1"}
    if openblas:
        variants.append(("mlx + OpenBLAS preloaded", ["--backend", "mlx"], {**mlx_env, "LD_PRELOAD": openblas}))
    # The bundled reference BLAS is ~50x slower: a small sample proves the point without minutes of waiting.
    small = ["--n-short", str(min(args.n_short, 64)), "--n-bodies", str(min(args.n_bodies, 16))]
    variants.append(("mlx, bundled BLAS", ["--backend", "mlx", *small], mlx_env))
    for name, extra, env in variants:
        out = tmp / f"{len(rows)}.npy"
        row = run_json([sys.executable, "-m", "bench.raw", *sizes, *threads, *extra, "--out", str(out)], env)
        got = np.load(out)
        n_short = min(args.n_short, 64) if "bundled" in name else args.n_short
        ref = (
            reference
            if len(got) == len(reference)
            else np.concatenate([reference[:n_short], reference[args.n_short : args.n_short + len(got) - n_short]])
        )
        row["parity_min_cos"] = min_cosine(got, ref)
        row["parity_texts"] = len(got)
        rows[name] = row
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small samples and short runs")
    p.add_argument("--st-python", default=".fixture-venv/bin/python", help="made by scripts/fixture-venv.sh")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-raw", action="store_true")
    p.add_argument("--skip-server", action="store_true")
    p.add_argument("--insecure-link", action="store_true", help="the worker link without CURVE (zmq.allow_insecure)")
    args = p.parse_args()
    args.n_short, args.n_bodies = (256, 64) if args.quick else (2000, 500)
    duration = 5.0 if args.quick else 20.0
    corpus.ensure_lists()
    results: dict[str, Any] = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    results["gemm_gflops"] = {"1 thread": gemm_gflops(1), "2 threads": gemm_gflops(2)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"backends-{time.strftime('%Y%m%d-%H%M%S')}.json"
    with tempfile.TemporaryDirectory(prefix="akidb-bench-") as tmp:
        if not args.skip_raw:
            results["in_process"] = in_process(args, Path(tmp))
            path.write_text(json.dumps(results, indent=2))  # kept even if the server part fails
        if not args.skip_server:
            results["server"] = asyncio.run(server.run_all(Path(tmp), duration, curve=not args.insecure_link))
    path.write_text(json.dumps(results, indent=2))
    print(summary(results))
    print(f"\nfull results: {path}")


def machine() -> dict[str, Any]:
    from worker.backends import cpu

    name = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    flags = cpu.cpu_flags()
    return {
        "cpu": name,
        "cores": os.cpu_count(),
        "avx512": "avx512f" in flags,
        "native_bf16": cpu.has_native_bf16(flags),
        "load_avg_at_start": os.getloadavg(),
    }


def summary(results: dict[str, Any]) -> str:
    lines = [f"machine: {results['machine']}", f"fp32 GEMM now (numpy/OpenBLAS 2048³): {results['gemm_gflops']}"]
    if "in_process" in results:
        lines += [
            "",
            "| engine | device | precision | short/s | bodies/s | one short (ms) | parity (min cos) |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in results["in_process"].items():
            lines.append(
                f"| {name} | {r.get('device', 'cpu')} | {r.get('precision', 'f32')} | {r['short_per_s']} | "
                f"{r['bodies_per_s']} | {r['single_short_ms']} | {r.get('parity_min_cos', '—')} |"
            )
    if "server" in results:
        lines += ["", server.summary(results["server"], results.get("in_process", {}))]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
