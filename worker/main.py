"""`akidb-worker`: load one model, warm it up, and serve the gateway's jobs over ZeroMQ."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable

import structlog

from shared.cli import CommandLine
from shared.config import BACKENDS, PRECISIONS, Config
from shared.curve import CurveKeyError, WorkerKeys, key_paths, load_worker_keys, missing_worker_keys
from shared.logs import configure_logging
from shared.protocol import ModelInfo, Ready
from worker import blas
from worker.backends.select import build_encoder, build_reranker, mlx_has_gpu, resolve_backend
from worker.connection import Connection
from worker.embedder import Embedder
from worker.loader import ModelLoadError, ModelSource, locate
from worker.runner import FatalWorkerError, Model, Runner
from worker.session import Timing
from worker.tokenize import PromptTooLong, TextTokenizer

log = structlog.get_logger("worker")

EXIT_FATAL = 1
EXIT_CONFIG = 2
KEYS_POLL_S = 0.5
KEYS_LOG_EVERY_S = 10.0


def command_line() -> CommandLine:
    """`akidb-worker`'s arguments: --config, --set, and shortcuts for the gateway, model and engine."""
    cli = CommandLine("akidb-worker", "Serve one embedding or reranking model to an AkiDB gateway over ZeroMQ.")
    cli.shortcut(
        "--gateway",
        "zmq.connect",
        metavar="ENDPOINT[,ENDPOINT...]",
        help="gateway ZeroMQ endpoints, e.g. tcp://10.0.0.5:5555 (comma-separated: serve several gateways)",
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
        model = load_model(cfg)
    except ModelLoadError as exc:
        log.error("model_load_failed", error=str(exc))
        return EXIT_CONFIG
    except Exception as exc:  # an engine that cannot start is fatal, and must say so
        log.exception("model_load_failed", error=str(exc))
        return EXIT_FATAL
    return serve(cfg, model)


def load_model(cfg: Config) -> Model:
    """Find the model, pick the backend (re-executing under OpenBLAS if MLX runs on a CPU), build it by its
    kind (an embedder, or a reranker: a registry entry or folder with `kind` rerank), warm it up."""
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
    if source.kind == "rerank":
        reranker = build_reranker(backend, source, cfg)
        reranker.warm_up()
        log_loaded(reranker.info, cfg, source, started)
        return reranker
    return load_embedder(cfg, backend, source, started)


def load_embedder(cfg: Config, backend: str, source: ModelSource, started: float) -> Embedder:
    """The embedding model's encoder and tokenizer (its prompts checked against max_tokens), warmed up."""
    encoder = build_encoder(backend, source, cfg)
    tokenizer = TextTokenizer.from_folder(source.path, source.max_tokens)
    for key, prompt in (("query_prompt", source.query_prompt), ("document_prompt", source.document_prompt)):
        try:
            tokenizer.prompt_tokens(prompt)
        except PromptTooLong as exc:
            raise ModelLoadError(f"embedding.{key}: {exc}") from None
    embedder = Embedder(source, tokenizer, encoder, cfg.embedding.batch_size)
    embedder.warm_up()
    log_loaded(embedder.info, cfg, source, started)
    return embedder


def log_loaded(info: ModelInfo, cfg: Config, source: ModelSource, started: float) -> None:
    """One `model_loaded` event: what READY will announce, and where it came from."""
    log.info(
        "model_loaded",
        model=info.name,
        kind=info.kind,
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


def serve(cfg: Config, model: Model) -> int:
    """Serve `model` to every gateway in `zmq.connect` until a signal or a fatal error; the exit code."""
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        curve = curve_keys(cfg, stopping)
    except CurveKeyError as exc:
        log.error("curve_keys_unusable", error=str(exc))
        return EXIT_CONFIG
    if stopping.is_set():
        return 0
    return run_worker(cfg, Runner(model), curve, stopping)


def ready_message(cfg: Config, info: ModelInfo) -> Ready:
    """What this worker announces to each gateway: its id, model and capacity."""
    return Ready(
        worker_id=cfg.worker.worker_id or f"{socket.gethostname()}-{os.getpid()}",
        models=(info,),
        device=info.device,
        capacity=cfg.worker.capacity,
        host=socket.gethostname(),
        pid=os.getpid(),
    )


def run_worker(
    cfg: Config,
    runner: Runner,
    curve: WorkerKeys | None,
    stopping: threading.Event,
    started: Callable[[Connection], None] = lambda conn: None,
) -> int:
    """The IO thread plus the compute loop (on this thread) until `stopping`; the exit code.

    `started` sees the IO thread once it runs (the in-process fake worker reads its sessions).
    """
    ready = ready_message(cfg, runner.model.info)
    timing = Timing(cfg.heartbeat.interval_ms / 1000, cfg.heartbeat.liveness)
    conn = Connection(cfg.zmq.connect, ready, timing, runner.jobs, curve, stopping)
    conn.start()
    started(conn)
    outbox = conn.outbox()
    code = 0
    try:
        runner.serve(outbox.send, stopping)
    except FatalWorkerError as exc:
        log.error("worker_fatal", error=str(exc))
        code = EXIT_FATAL
    finally:
        outbox.close()
        stopping.set()
        conn.join(timeout=5)
        conn.close()
    if conn.failed:
        code = EXIT_FATAL
    elif conn.refused:
        code = EXIT_CONFIG
    log.info("worker_stopped", worker_id=ready.worker_id, exit_code=code)
    return code


def curve_keys(cfg: Config, stopping: threading.Event) -> WorkerKeys | None:
    """This worker's CURVE keys (None with `zmq.allow_insecure`), waiting for the local ones.

    Under `make run` the gateway makes the local pair on its first start, maybe after this
    worker started: missing default files are waited for. Files named in the config must exist.
    """
    if cfg.zmq.allow_insecure:
        log.warning("curve_off", hint="zmq.allow_insecure is true: this worker's link to the gateway is not encrypted")
        return None
    paths = key_paths(cfg)
    explicit = cfg.zmq.worker_key is not None or cfg.zmq.server_public_key is not None
    last_log = -KEYS_LOG_EVERY_S
    while missing := missing_worker_keys(paths):
        if explicit:
            raise CurveKeyError(
                f"{', '.join(map(str, missing))} does not exist (zmq.worker_key, zmq.server_public_key)"
            )
        if time.monotonic() - last_log >= KEYS_LOG_EVERY_S:
            last_log = time.monotonic()
            log.warning(
                "curve_keys_missing",
                missing=[str(p) for p in missing],
                hint="the gateway makes them on its first start with the same storage.data_dir (or zmq.keys_dir); "
                "for a worker on another machine set zmq.worker_key and zmq.server_public_key (README)",
            )
        if stopping.wait(KEYS_POLL_S):
            return None
    return load_worker_keys(paths)
