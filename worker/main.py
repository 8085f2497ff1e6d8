"""`akidb-worker`: load one model, warm it up, and serve the gateway's jobs over ZeroMQ."""

from __future__ import annotations

import os
import queue
import signal
import socket
import sys
import time

import structlog
import zmq

from shared.cli import CommandLine
from shared.config import BACKENDS, PRECISIONS, Config
from shared.logs import configure_logging
from shared.protocol import Job, Ready
from worker import blas
from worker.backends.select import build_encoder, mlx_has_gpu, resolve_backend
from worker.connection import Connection, HeartbeatTiming
from worker.embedder import Embedder
from worker.loader import ModelLoadError, locate
from worker.runner import FatalWorkerError, Runner
from worker.tokenize import PromptTooLong, TextTokenizer

log = structlog.get_logger("worker")

EXIT_FATAL = 1
EXIT_CONFIG = 2


def command_line() -> CommandLine:
    """`akidb-worker`'s arguments: --config, --set, and shortcuts for the gateway, model and engine."""
    cli = CommandLine("akidb-worker", "Serve one embedding model to an AkiDB gateway over ZeroMQ.")
    cli.shortcut(
        "--gateway", "zmq.connect", metavar="ENDPOINT", help="gateway ZeroMQ endpoint, e.g. tcp://10.0.0.5:5555"
    )
    cli.shortcut("--model", "embedding.model_name", metavar="NAME", help="model name, alias or Hugging Face repo id")
    cli.shortcut("--model-path", "embedding.model_path", metavar="DIR", help="serve the model in this local folder")
    cli.shortcut("--backend", "embedding.backend", choices=BACKENDS, help="inference backend (default: auto)")
    cli.shortcut("--precision", "embedding.precision", choices=PRECISIONS, help="inference precision (default: auto)")
    cli.shortcut(
        "--threads", "embedding.num_threads", type=int, metavar="N", help="inference threads (0: the engine's default)"
    )
    cli.shortcut("--worker-id", "worker.worker_id", metavar="ID", help="this worker's id (default: host-pid)")
    return cli


def main(argv: list[str] | None = None) -> int:
    cfg = command_line().config(sys.argv[1:] if argv is None else argv, os.environ)
    configure_logging(cfg.logging.level, cfg.logging.format, process="worker")
    try:
        embedder = load_embedder(cfg)
    except ModelLoadError as exc:
        log.error("model_load_failed", error=str(exc))
        return EXIT_CONFIG
    except Exception as exc:  # an engine that cannot start is fatal, and must say so
        log.exception("model_load_failed", error=str(exc))
        return EXIT_FATAL
    return serve(cfg, embedder)


def load_embedder(cfg: Config) -> Embedder:
    """Find the model, pick the backend (re-executing under OpenBLAS if MLX runs on a CPU), warm up."""
    started = time.monotonic()
    source = locate(cfg.embedding)
    backend = resolve_backend(cfg.embedding.backend, source.family)
    if backend == "mlx" and not mlx_has_gpu():
        why = blas.reexec_with_openblas(os.environ, sys.argv, cfg.embedding.num_threads)
        if why == "not-found":
            log.warning(
                "mlx_reference_blas",
                hint="MLX will use the slow reference BLAS; apt-get install libopenblas0-pthread",
            )
    encoder = build_encoder(backend, source, cfg)
    tokenizer = TextTokenizer.from_folder(source.path, source.max_tokens)
    for key, prompt in (("query_prompt", source.query_prompt), ("document_prompt", source.document_prompt)):
        try:
            tokenizer.prompt_tokens(prompt)
        except PromptTooLong as exc:
            raise ModelLoadError(f"embedding.{key}: {exc}") from None
    embedder = Embedder(source, tokenizer, encoder, cfg.embedding.batch_size)
    embedder.warm_up()
    info = embedder.info
    log.info(
        "model_loaded",
        model=info.name,
        backend=info.backend,
        requested_backend=cfg.embedding.backend,
        device=info.device,
        precision=info.precision,
        dimension=info.dimension,
        max_tokens=info.max_tokens,
        pooling=info.pooling,
        query_prompt=info.query_prompt,
        document_prompt=info.document_prompt,
        path=str(source.path),
        seconds=round(time.monotonic() - started, 2),
    )
    return embedder


def serve(cfg: Config, embedder: Embedder) -> int:
    """Run the IO thread and the compute loop until a signal or a fatal error."""
    worker_id = cfg.worker.worker_id or f"{socket.gethostname()}-{os.getpid()}"
    ready = Ready(
        worker_id=worker_id,
        models=(embedder.info,),
        device=embedder.info.device,
        capacity=cfg.worker.capacity,
        host=socket.gethostname(),
        pid=os.getpid(),
    )
    ctx = zmq.Context()
    jobs: queue.Queue[Job] = queue.Queue()
    timing = HeartbeatTiming(cfg.heartbeat.interval_ms / 1000, cfg.heartbeat.liveness)
    conn = Connection(ctx, cfg.zmq.connect, ready, timing, jobs)
    stopping = conn.stopping
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    runner = Runner(ctx, embedder, jobs, cfg.worker.test_crash_marker)
    conn.start()
    code = 0
    try:
        runner.serve(stopping)
    except FatalWorkerError as exc:
        log.error("worker_fatal", error=str(exc))
        code = EXIT_FATAL
    finally:
        stopping.set()
        conn.join(timeout=5)
        conn.results.close(linger=0)
        # A stuck IO thread must not turn shutdown into a hang: then drop its socket too.
        ctx.term() if not conn.is_alive() else ctx.destroy(linger=0)
    if conn.failed:
        code = EXIT_FATAL
    log.info("worker_stopped", worker_id=worker_id, exit_code=code)
    return code
