"""The configuration tree both processes read: defaults < YAML file < environment < CLI.

Parsed once in each `main()` and passed down; no other module reads `os.environ`.
Environment variables are `AKIDB_<SECTION>__<KEY>` (e.g. `AKIDB_EMBEDDING__MODEL_NAME`).
CLI overrides are `section.key=value` strings. Every error names the key and the value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shared.redact import RAW_KEY_HINT, looks_like_raw_key, redact

POOLINGS = ("mean", "cls", "last")
BACKENDS = ("auto", "mlx", "openvino")
PRECISIONS = ("auto", "f32", "bf16")
METRICS = ("cosine", "l2", "ip")
INDEX_DTYPES = ("f32", "f16", "bf16")
STORAGE_BACKENDS = ("embedded", "postgres")
# What an API key may do; gateway/api/auth.py maps every route to one of them.
SCOPES = ("read", "write", "admin")
KEY_FIELDS = ("name", "sha256", "scopes", "collections")
ENV_PREFIX = "AKIDB_"
MIN_HMAC_KEY = 32


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key.

    The message is redacted here, once: it may quote a value, and a value may be a secret pasted in the wrong
    place (a raw API key, a database URL with its password), which must not reach stderr or a log file.
    """

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


def _opt(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    minimum: float | None = None,
    keep_empty: bool = False,
    secret: bool = False,
) -> Any:
    # keep_empty: an empty value from the environment or the command line is the empty string,
    # not "unset" (a prompt set to "" turns the registry's prompt off).
    # secret: left out of the config's repr, so logging a config (or a traceback's locals) cannot show it.
    metadata = {"choices": choices, "min": minimum, "help": help, "keep_empty": keep_empty}
    return field(default=default, repr=not secret, metadata=metadata)


@dataclass(frozen=True)
class ServerConfig:
    host: str = _opt("0.0.0.0", "HTTP (and gRPC) listen address")
    port: int = _opt(8080, "HTTP port", minimum=0)
    grpc_port: int = _opt(9090, "gRPC port", minimum=0)
    grpc_enabled: bool = _opt(True, "serve the gRPC EmbeddingService")
    max_body_bytes: int = _opt(16 * 1024 * 1024, "largest request body; bigger is 413", minimum=1024)
    request_timeout_s: float = _opt(30.0, "a request not answered by then is 504", minimum=0.001)
    tls_cert_file: str | None = _opt(None, "PEM certificate (chain): serve HTTPS and gRPC over TLS")
    tls_key_file: str | None = _opt(None, "PEM private key of tls_cert_file")
    # Slow or hostile clients (slowloris) must not hold connections open for ever.
    header_timeout_s: float = _opt(
        60.0,
        "a connection without a complete request head this long after it opened (or after its last response) "
        "is closed; also the idle keep-alive limit",
        minimum=0.1,
    )
    body_timeout_s: float = _opt(
        60.0, "a request body not fully received this long after its head is answered 408 and closed", minimum=0.1
    )
    uvloop: bool = _opt(True, "gateway: run the event loop on uvloop where it is installed (Linux, macOS)")


@dataclass(frozen=True)
class ZmqConfig:
    bind: str = _opt("tcp://0.0.0.0:5555", "gateway: ZeroMQ ROUTER endpoint workers connect to")
    connect: tuple[str, ...] = _opt(
        ("tcp://127.0.0.1:5555",),
        "worker: the gateway endpoints to dial, one session each (a YAML list, or comma-separated)",
    )
    allow_insecure: bool = _opt(False, "turn CURVE off: any peer that reaches zmq.bind may join as a worker")
    keys_dir: str | None = _opt(None, "CURVE key folder (default <storage.data_dir>/keys)")
    server_key: str | None = _opt(
        None, "gateway: its CURVE pair, made on first start (default <keys_dir>/gateway.key_secret)"
    )
    workers_dir: str | None = _opt(None, "gateway: public keys of the workers it accepts (default <keys_dir>/workers)")
    worker_key: str | None = _opt(None, "worker: its CURVE pair (default <keys_dir>/local-worker.key_secret)")
    server_public_key: str | None = _opt(None, "worker: the gateway's public key (default <keys_dir>/gateway.key)")


@dataclass(frozen=True)
class HeartbeatConfig:
    interval_ms: int = _opt(1000, "heartbeat period, both ways", minimum=10)
    liveness: int = _opt(3, "silent intervals before a peer is considered gone", minimum=1)


@dataclass(frozen=True)
class BatchingConfig:
    max_batch_size: int = _opt(32, "most texts in one worker job", minimum=1)
    batch_timeout_ms: float = _opt(10.0, "longest a text waits to share a job while workers are busy", minimum=0)
    max_queue_texts: int = _opt(8192, "texts waiting for a worker before new requests get 503", minimum=1)
    max_texts_per_request: int = _opt(2048, "most texts in one embedding request", minimum=1)


@dataclass(frozen=True)
class EmbeddingConfig:
    model_name: str = _opt("all-MiniLM-L6-v2", "default model: a registry name, alias or Hugging Face repo id")
    model_path: str | None = _opt(None, "worker: serve the model in this local folder")
    pooling: str | None = _opt(None, "worker: default pooling (else the model's own)", choices=POOLINGS)
    normalize: bool = _opt(True, "L2-normalise by default (requests may override)")
    max_tokens: int | None = _opt(None, "worker: truncation limit (else the model's own)", minimum=1)
    auto_download: bool = _opt(False, "worker: fetch missing models from the Hugging Face hub")
    batch_size: int = _opt(32, "worker: most texts in one forward pass", minimum=1)
    backend: str = _opt("auto", "worker: inference engine", choices=BACKENDS)
    precision: str = _opt("auto", "worker: inference precision", choices=PRECISIONS)
    num_threads: int = _opt(0, "worker: inference threads (0: the engine's default)", minimum=0)
    cache_dir: str | None = _opt(None, "worker: Hugging Face / compiled-model cache folder")
    # Off by default: a model imported from the cache holds its own copy of the weights (MiniLM with
    # the default shape buckets: worker RSS 634 MB from the cache, 296 MB compiled afresh), and
    # compiling MiniLM afresh takes ~0.6 s.
    compile_cache: bool = _opt(
        False, "worker: keep OpenVINO compiled models in cache_dir/openvino (else storage.data_dir/cache/openvino)"
    )
    shape_buckets: str = _opt(
        "1x16,1x32,2x16",
        "worker, OpenVINO: static shapes (texts x tokens) small passes are padded up to; each is one more "
        'compiled model (~30 MB bf16, ~50 MB f32); "" runs everything on the dynamic-shape model',
        keep_empty=True,
    )
    # Each distinct input shape the dynamic-shape model meets keeps its own kernels and buffers in OpenVINO's
    # and oneDNN's caches, for good: a worker's memory grows for as long as traffic brings new shapes
    # (docs/PERFORMANCE-TUNING.md, Memory). Padding passes up to a grid bounds the shapes it can meet. 2x8 is
    # the cheapest grid measured: on a stream of 800 new corpus batches, caches cold, 1.12x the time of no grid,
    # with RSS flat at 264 MB where no grid reached 360 MB and was still growing. Memory that stays flat
    # by default is worth that; "1x1" turns the grid off for a worker restarted often enough not to care.
    shape_grid: str = _opt(
        "2x8",
        "worker, OpenVINO: passes on the dynamic-shape model are padded up to a multiple of these texts (above "
        '4) x tokens, so it meets a bounded set of shapes (its memory grows per shape); "1x1" pads nothing',
    )
    query_prompt: str | None = _opt(
        None, 'worker: text put before `input_type: query` texts (else the model\'s own; "" for none)', keep_empty=True
    )
    document_prompt: str | None = _opt(
        None,
        'worker: text put before `input_type: document` texts (else the model\'s own; "" for none)',
        keep_empty=True,
    )


@dataclass(frozen=True)
class RerankConfig:
    default_model: str = _opt(
        "ms-marco-MiniLM-L-6-v2",
        "gateway: the reranker for requests that name none (/rerank, /v1/rerank, search's `rerank: true`)",
    )
    max_documents: int = _opt(
        1000, "gateway: most documents in one rerank request, and most search `rerank.candidates`", minimum=1
    )


@dataclass(frozen=True)
class CacheConfig:
    max_bytes: int = _opt(
        64 * 1024 * 1024,
        "gateway: bytes of computed vectors kept for repeated texts (LRU, every embedding path); 0 turns it off",
        minimum=0,
    )


@dataclass(frozen=True)
class WorkerConfig:
    worker_id: str | None = _opt(None, "worker: id on the wire (default host-pid)")
    capacity: int = _opt(2, "worker: jobs it holds at once (one running, the rest waiting)", minimum=1)


@dataclass(frozen=True)
class PostgresConfig:
    dsn: str | None = _opt(
        None,
        "storage.backend postgres: the database, as a libpq URL or key=value string (its password is never logged)",
        secret=True,
    )
    pool_size: int = _opt(8, "storage.backend postgres: connections each gateway keeps to the database", minimum=1)
    statement_timeout_ms: int = _opt(
        30000, "storage.backend postgres: a statement running longer is cancelled (and the request fails)", minimum=1
    )
    job_lease_s: float = _opt(
        15.0,
        "storage.backend postgres: a re-embedding job's lease; another gateway takes the job over within two of "
        "them after its gateway dies",
        minimum=1,
    )


@dataclass(frozen=True)
class StorageConfig:
    backend: str = _opt(
        "embedded",
        "where collections live: embedded (SQLite + USearch under data_dir) or postgres (pgvector, storage.postgres)",
        choices=STORAGE_BACKENDS,
    )
    data_dir: str = _opt("./data", "gateway: where collections are stored; both: the default home of zmq.keys_dir")
    max_documents_per_request: int = _opt(1000, "most documents in one insert request", minimum=1)
    # Defaults for new collections' HNSW indexes (each collection may set its own at creation),
    # measured on 100k real MiniLM vectors: docs/collections.md, Index parameters.
    connectivity: int = _opt(16, "HNSW edges per node (M) for new collections", minimum=2)
    expansion_add: int = _opt(128, "HNSW candidates per insertion (efConstruction) for new collections", minimum=1)
    expansion_search: int = _opt(128, "HNSW candidates per search (ef) for new collections", minimum=1)
    index_dtype: str = _opt("bf16", "how indexes store vectors (the database keeps float32)", choices=INDEX_DTYPES)
    snapshot_every: int = _opt(10000, "changes between index snapshots; a restart replays at most this many", minimum=1)
    read_threads: int = _opt(4, "threads for searches and reads (each collection also has one writer)", minimum=1)
    filter_max_candidates: int = _opt(
        4096, "a filtered search widens HNSW up to this many candidates, then searches the matches exactly", minimum=1
    )
    filter_memory_mb: int = _opt(
        32, "per collection: MiB for the documents recent filters match (least recently used dropped first)", minimum=1
    )
    max_restore_bytes: int = _opt(
        64 * 1024**3,
        "largest collection snapshot POST /collections/restore takes (streamed to disk; bigger is 413), and the "
        "most its members may unpack to",
        minimum=1024,
    )
    snapshot_hmac_key: str | None = _opt(
        None,
        "sign collection snapshots with this key (HMAC-SHA256, 32+ characters) and restore only snapshots signed "
        "with it; checksums alone catch damage, not edits",
        secret=True,
    )
    snapshot_rate_mb_s: float = _opt(
        0.0,
        "collection snapshots write at most this many MB/s (0: no limit), so a backup leaves the disk to requests",
        minimum=0.0,
    )
    rrf_k: int = _opt(
        60, "hybrid search: k of reciprocal rank fusion, score = sum of weight / (rrf_k + rank)", minimum=1
    )
    postgres: PostgresConfig = field(default_factory=PostgresConfig)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = _opt("info", "log level", choices=("debug", "info", "warning", "error"))
    format: str = _opt("auto", "json, console, or auto (console on a terminal)", choices=("auto", "json", "console"))


@dataclass(frozen=True)
class ApiKeyEntry:
    """One API key as the gateway knows it: a name for logs, the key's SHA-256 (never the key), its scopes,
    and the glob patterns of the collections it may touch (None: every collection)."""

    name: str
    sha256: str
    scopes: tuple[str, ...]
    collections: tuple[str, ...] | None = None
    # The keys file the record came from (None: the config itself): a re-read of the file replaces only these.
    source: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class AuthConfig:
    keys: tuple[ApiKeyEntry, ...] = _opt(
        (),
        "API keys: a list of {name, sha256, scopes, collections} (`akidb-keys api` makes one); none: auth is off",
    )
    keys_file: str | None = _opt(
        None, "more API keys: a YAML list, or JSON lines, of the same records; re-read when it changes and on SIGHUP"
    )
    open_metrics: bool = _opt(False, "GET /metrics answers without a key even when keys are configured")


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    zmq: ZmqConfig = field(default_factory=ZmqConfig)
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    rerank: RerankConfig = field(default_factory=RerankConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)


def key_digest(key: str) -> str:
    """The hex SHA-256 the config holds for an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Iterable[str] = (),
) -> Config:
    """Build the config: defaults, then the YAML file, then `AKIDB_*` variables, then overrides."""
    tree: dict[str, dict[str, Any]] = {}
    if path is not None:
        _merge(tree, _read_yaml(Path(path)), source=str(path))
    for name, raw in (env or {}).items():
        if name.startswith(ENV_PREFIX) and "__" in name:
            section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
            _set(tree, section, key, raw, source=f"environment variable {name}", from_text=True)
    for item in overrides:
        dotted, sep, raw = item.partition("=")
        section, dot, key = dotted.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        _set(tree, section, key, raw, source="command line", from_text=True)
    return _build(tree)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    return data


def _sections() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def _merge(tree: dict[str, dict[str, Any]], data: dict[str, Any], source: str) -> None:
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{section}: expected a mapping in {source}, got {values!r}")
        for key, value in values.items():
            if isinstance(value, dict) and _nested(section, str(key)) is not None:
                for sub_key, sub_value in value.items():
                    _set(tree, str(section), f"{key}.{sub_key}", sub_value, source=source, from_text=False)
            else:
                _set(tree, str(section), str(key), value, source=source, from_text=False)


def _nested(section: str, key: str) -> type | None:
    """The dataclass of a nested group of keys (`storage.postgres`), else None."""
    cls = _sections().get(section)
    if cls is None or key not in {f.name for f in dataclasses.fields(cls)}:
        return None
    hint = typing.get_type_hints(cls)[key]
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def _set(tree: dict[str, dict[str, Any]], section: str, key: str, value: Any, *, source: str, from_text: bool) -> None:
    sections = _sections()
    if section not in sections:
        raise ConfigError(f"unknown config section {section!r} (from {source}); known: {', '.join(sections)}")
    # A nested key: `storage.postgres.dsn` on the command line, AKIDB_STORAGE__POSTGRES__DSN in the environment.
    group, dot, rest = key.replace("__", ".").partition(".")
    if dot:
        nested = _nested(section, group)
        if nested is None:
            raise ConfigError(f"unknown config key {section}.{key} (from {source})")
        _set_nested(tree.setdefault(section, {}), nested, f"{section}.{group}", group, rest, value, source, from_text)
        return
    cls = sections[section]
    names = {f.name for f in dataclasses.fields(cls)}
    if key not in names:
        raise ConfigError(f"unknown config key {section}.{key} (from {source}); known: {', '.join(sorted(names))}")
    hint = typing.get_type_hints(cls)[key]
    keep_empty = next(f for f in dataclasses.fields(cls) if f.name == key).metadata.get("keep_empty", False)
    if keep_empty and from_text and value == "":
        tree.setdefault(section, {})[key] = ""
        return
    tree.setdefault(section, {})[key] = _coerce(hint, value, f"{section}.{key}", source, from_text)


def _set_nested(
    values: dict[str, Any], cls: type, prefix: str, group: str, key: str, value: Any, source: str, from_text: bool
) -> None:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if key not in fields:
        raise ConfigError(f"unknown config key {prefix}.{key} (from {source}); known: {', '.join(sorted(fields))}")
    hint = typing.get_type_hints(cls)[key]
    values.setdefault(group, {})[key] = _coerce(hint, value, f"{prefix}.{key}", source, from_text)


def _coerce(hint: Any, value: Any, key: str, source: str, from_text: bool) -> Any:
    if hint == tuple[ApiKeyEntry, ...]:
        return parse_api_keys(_yaml_text(value, key, source) if from_text else value, source)
    if hint == tuple[str, ...]:
        return _string_list(value, key, source)
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if value is None or (from_text and optional and str(value).strip().lower() in ("", "none", "null")):
        if optional:
            return None
        raise ConfigError(f"{key}: a value is required (from {source})")
    if base is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if from_text and text in ("1", "true", "yes", "on"):
            return True
        if from_text and text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: {value!r} is not a boolean (from {source})")
    if base in (int, float):
        if isinstance(value, bool) or (not from_text and not isinstance(value, (int, float))):
            raise ConfigError(f"{key}: {value!r} is not a number (from {source})")
        try:
            number = base(value) if base is float else int(str(value).strip())
        except ValueError:
            raise ConfigError(
                f"{key}: {value!r} is not {'an integer' if base is int else 'a number'} (from {source})"
            ) from None
        return number
    if not isinstance(value, str):
        raise ConfigError(f"{key}: {value!r} is not a string (from {source})")
    if not value.strip() and not optional:
        raise ConfigError(f"{key}: a value is required (from {source})")
    return value


def _string_list(value: Any, key: str, source: str) -> tuple[str, ...]:
    """A YAML list of strings, or one string of comma-separated items; at least one, none empty."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{key}: {value!r} is not a list of strings (from {source})")
    out = tuple(i.strip() for i in items)
    if not out or not all(out):
        raise ConfigError(f"{key}: {value!r} has an empty item; give one or more values (from {source})")
    if len(set(out)) != len(out):
        raise ConfigError(f"{key}: {value!r} names one value twice (from {source})")
    return out


def _build(tree: dict[str, dict[str, Any]]) -> Config:
    built = {}
    for section, cls in _sections().items():
        values = dict(tree.get(section, {}))
        for f in dataclasses.fields(cls):
            nested = _nested(section, f.name)
            if nested is not None and f.name in values:
                for sub in dataclasses.fields(nested):
                    if sub.name in values[f.name]:
                        _validate(f"{section}.{f.name}.{sub.name}", values[f.name][sub.name], sub.metadata)
                values[f.name] = nested(**values[f.name])
            elif f.name in values:
                _validate(f"{section}.{f.name}", values[f.name], f.metadata)
        built[section] = cls(**values)
    cfg = Config(**built)
    parse_shape_buckets(cfg.embedding.shape_buckets)
    key = cfg.storage.snapshot_hmac_key
    if key is not None and len(key) < MIN_HMAC_KEY:
        # Its length, never the key: this message goes to stderr and the logs.
        raise ConfigError(
            f"storage.snapshot_hmac_key: {len(key)} characters is too short to sign snapshots; use {MIN_HMAC_KEY} "
            "or more (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    parse_shape_grid(cfg.embedding.shape_grid)
    server = cfg.server
    if (server.tls_cert_file is None) != (server.tls_key_file is None):
        raise ConfigError("server.tls_cert_file and server.tls_key_file go together: set both, or neither")
    if cfg.auth.keys_file is not None:
        # The file's keys join the table here, so a bad file stops the gateway at start-up.
        keys = cfg.auth.keys + read_keys_file(Path(cfg.auth.keys_file))
        cfg = dataclasses.replace(cfg, auth=dataclasses.replace(cfg.auth, keys=keys))
    if cfg.storage.backend == "postgres" and not cfg.storage.postgres.dsn:
        raise ConfigError(
            "storage.backend is postgres but storage.postgres.dsn is not set; give the database "
            "(e.g. AKIDB_STORAGE__POSTGRES__DSN=postgresql://akidb@db.example/akidb)"
        )
    check_unique_names(cfg.auth.keys)
    return cfg


def parse_shape_buckets(text: str) -> tuple[tuple[int, int], ...]:
    """`embedding.shape_buckets` ("1x16,2x32") as (texts, tokens) pairs, smallest first; "" is none."""
    buckets = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        rows, _, width = item.lower().partition("x")
        if not (rows.isdigit() and width.isdigit() and int(rows) > 0 and int(width) > 0):
            raise ConfigError(f'embedding.shape_buckets: {item!r} is not TEXTSxTOKENS (e.g. 1x16,2x32), or "" for none')
        buckets.add((int(rows), int(width)))
    return tuple(sorted(buckets, key=lambda b: (b[0] * b[1], b[0])))


def parse_shape_grid(text: str) -> tuple[int, int]:
    """`embedding.shape_grid` ("4x16") as (texts, tokens)."""
    rows, _, width = text.strip().lower().partition("x")
    if not (rows.isdigit() and width.isdigit() and int(rows) > 0 and int(width) > 0):
        raise ConfigError(f'embedding.shape_grid: {text!r} is not TEXTSxTOKENS (e.g. 4x16), or "1x1" to pad nothing')
    return int(rows), int(width)


def _yaml_text(value: str, key: str, source: str) -> Any:
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        # Not the text itself: it may hold a key someone pasted by mistake.
        raise ConfigError(f"{key}: not a YAML/JSON list of {{name, sha256, scopes}} (from {source})") from None


def parse_api_keys(data: Any, source: str) -> tuple[ApiKeyEntry, ...]:
    """A list of `{name, sha256, scopes}` records, checked; the error names the record and the field."""
    if data is None:
        return ()
    if looks_like_raw_key(data):
        raise ConfigError(f"auth.keys in {source}: the value {RAW_KEY_HINT}")
    if not isinstance(data, list):
        # The type, not the value: a scalar here is often a secret pasted where its record belongs.
        raise ConfigError(
            f"auth.keys: expected a list of {{name, sha256, scopes}} in {source}, got a {type(data).__name__}"
        )
    return tuple(_api_key(record, f"auth.keys[{i}] in {source}") for i, record in enumerate(data))


def _api_key(record: Any, where: str) -> ApiKeyEntry:
    if looks_like_raw_key(record) or (isinstance(record, dict) and any(map(looks_like_raw_key, record.values()))):
        raise ConfigError(f"{where}: {RAW_KEY_HINT}")
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: expected a mapping of {', '.join(KEY_FIELDS)}, got {type(record).__name__}")
    unknown = sorted(set(record) - set(KEY_FIELDS))
    if unknown:
        hint = " (never the key itself: `akidb-keys api` prints its sha256)" if "key" in unknown else ""
        raise ConfigError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}{hint}")
    name, digest, scopes = record.get("name"), record.get("sha256"), record.get("scopes")
    patterns = record.get("collections")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: name is required, a non-empty string")
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest):
        raise ConfigError(f"{where} ({name}): sha256 must be 64 hex digits (`akidb-keys api` prints it)")
    if isinstance(scopes, str):
        scopes = [s.strip() for s in scopes.split(",")]
    if not isinstance(scopes, list) or not scopes or any(s not in SCOPES for s in scopes):
        raise ConfigError(f"{where} ({name}): scopes {scopes!r} must be a non-empty list of {', '.join(SCOPES)}")
    return ApiKeyEntry(
        name=name.strip(),
        sha256=digest.lower(),
        scopes=tuple(dict.fromkeys(scopes)),
        collections=_patterns(patterns, f"{where} ({name})"),
    )


def _patterns(value: Any, where: str) -> tuple[str, ...] | None:
    """A key's `collections`: glob patterns on collection names; absent (None) means every collection."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [p.strip() for p in value.split(",")]
    if not isinstance(value, list) or not value or any(not isinstance(p, str) or not p.strip() for p in value):
        raise ConfigError(
            f"{where}: collections {value!r} must be a non-empty list of glob patterns (e.g. ['team-a-*']), "
            "or left out for every collection"
        )
    return tuple(dict.fromkeys(p.strip() for p in value))


def read_keys_file(path: Path) -> tuple[ApiKeyEntry, ...]:
    """auth.keys_file: a YAML list of records, or one JSON record per line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"auth.keys_file: cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None  # JSON lines are not one YAML document
    if not isinstance(data, list):
        data = _json_lines(path, text)
    return tuple(dataclasses.replace(k, source=str(path)) for k in parse_api_keys(data, str(path)))


def _json_lines(path: Path, text: str) -> list[Any]:
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if looks_like_raw_key(line):
            raise ConfigError(f"auth.keys_file: {path} line {number} {RAW_KEY_HINT}")
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise ConfigError(f"auth.keys_file: {path} is neither a YAML list nor JSON lines (line {number})") from None
    return records


def check_unique_names(keys: tuple[ApiKeyEntry, ...]) -> None:
    """ConfigError if two keys share a name: the logs tell keys apart by name."""
    seen: set[str] = set()
    for key in keys:
        if key.name in seen:
            raise ConfigError(f"auth.keys: the name {key.name!r} is used twice; logs tell keys apart by name")
        seen.add(key.name)


def _validate(key: str, value: Any, meta: Mapping[str, Any]) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}")
    minimum = meta.get("min")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key}: {value!r} is below the minimum of {minimum}")


def describe() -> list[tuple[str, Any, str, str]]:
    """Every key with its default, type and meaning, for the README's reference."""
    rows = []
    for section, cls in _sections().items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            nested = _nested(section, f.name)
            if nested is not None:
                sub_hints = typing.get_type_hints(nested)
                for sub in dataclasses.fields(nested):
                    default = sub.default if sub.default not in (dataclasses.MISSING, ()) else None
                    key = f"{section}.{f.name}.{sub.name}"
                    rows.append((key, default, _type_name(sub_hints[sub.name]), sub.metadata.get("help", "")))
                continue
            default = f.default if f.default not in (dataclasses.MISSING, ()) else None
            rows.append((f"{section}.{f.name}", default, _type_name(hints[f.name]), f.metadata.get("help", "")))
    return rows


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is tuple:
        return "list"
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return (args[0] if args else hint).__name__
