"""Config: defaults < YAML < environment < CLI, and every error names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import (
    ApiKeyEntry,
    Config,
    ConfigError,
    describe,
    key_digest,
    load_config,
    parse_shape_buckets,
)


def test_defaults_match_the_issue() -> None:
    cfg = load_config()
    assert cfg == Config()
    assert cfg.embedding.model_name == "all-MiniLM-L6-v2"
    assert cfg.embedding.normalize is True
    assert cfg.batching.max_batch_size == 32 and cfg.batching.batch_timeout_ms == 10
    assert cfg.batching.max_texts_per_request == 2048
    assert cfg.server.port == 8080 and cfg.server.grpc_port == 9090
    assert cfg.zmq.bind == "tcp://0.0.0.0:5555"


def test_precedence_yaml_then_env_then_cli(tmp_path: Path) -> None:
    path = tmp_path / "akidb.yaml"
    path.write_text("embedding:\n  model_name: from-yaml\n  batch_size: 8\nserver:\n  port: 1000\n")
    env = {"AKIDB_EMBEDDING__MODEL_NAME": "from-env", "AKIDB_SERVER__PORT": "2000", "UNRELATED": "x"}
    cfg = load_config(path, env, ["server.port=3000"])
    assert cfg.embedding.model_name == "from-env"
    assert cfg.embedding.batch_size == 8
    assert cfg.server.port == 3000


def test_text_values_are_coerced() -> None:
    cfg = load_config(
        None,
        {"AKIDB_EMBEDDING__NORMALIZE": "false", "AKIDB_EMBEDDING__MAX_TOKENS": "none"},
        ["batching.batch_timeout_ms=2.5", "embedding.pooling=cls"],
    )
    assert cfg.embedding.normalize is False
    assert cfg.embedding.max_tokens is None
    assert cfg.batching.batch_timeout_ms == 2.5
    assert cfg.embedding.pooling == "cls"


def test_prompts_are_unset_by_default_and_kept_exactly_as_given(tmp_path: Path) -> None:
    """None means the model's own prompt; "" (even from the environment or --set) means no prompt."""
    assert (load_config().embedding.query_prompt, load_config().embedding.document_prompt) == (None, None)
    path = tmp_path / "akidb.yaml"
    path.write_text('embedding:\n  query_prompt: "Instruct: find it\\nQuery: "\n  document_prompt: ""\n')
    cfg = load_config(path)
    assert (cfg.embedding.query_prompt, cfg.embedding.document_prompt) == ("Instruct: find it\nQuery: ", "")
    cfg = load_config(None, {"AKIDB_EMBEDDING__QUERY_PROMPT": ""}, ["embedding.document_prompt=passage: "])
    assert (cfg.embedding.query_prompt, cfg.embedding.document_prompt) == ("", "passage: ")  # trailing space kept
    assert load_config(None, {}, ["embedding.query_prompt=none"]).embedding.query_prompt is None


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("embedding:\n  pooling: max\n", "embedding.pooling: 'max' is not one of mean, cls, last"),
        ("embedding:\n  backend: cuda\n", "embedding.backend: 'cuda' is not one of"),
        ("batching:\n  max_batch_size: 0\n", "batching.max_batch_size: 0 is below the minimum of 1"),
        ("server:\n  port: eighty\n", "server.port: 'eighty' is not a number"),
        ("embedding:\n  normalize: maybe\n", "embedding.normalize: 'maybe' is not a boolean"),
        ("embedding:\n  modelname: x\n", "unknown config key embedding.modelname"),
        ("embeddings:\n  model_name: x\n", "unknown config section 'embeddings'"),
        ("server: 8080\n", "server: expected a mapping"),
        ("- a\n- b\n", "must hold a mapping of sections"),
        ("server: [\n", "not valid YAML"),
        ("embedding:\n  model_name: 5\n", "embedding.model_name: 5 is not a string"),
    ],
)
def test_bad_files_name_the_key(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load_config(path)


@pytest.mark.parametrize(
    ("env", "overrides", "message"),
    [
        ({"AKIDB_SERVER__PORT": "x"}, [], "environment variable AKIDB_SERVER__PORT"),
        ({}, ["server.port"], "must look like section.key=value"),
        ({}, ["port=1"], "must look like section.key=value"),
        ({}, ["heartbeat.liveness=0"], "heartbeat.liveness: 0 is below the minimum"),
        ({}, ["embedding.model_name="], "embedding.model_name: a value is required"),
    ],
)
def test_env_and_cli_errors_name_the_source(env: dict[str, str], overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, env, overrides)


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == Config()


def test_describe_lists_every_key_with_its_default() -> None:
    rows = {key: (default, kind) for key, default, kind, _ in describe()}
    assert rows["embedding.model_name"] == ("all-MiniLM-L6-v2", "str")
    assert rows["batching.batch_timeout_ms"] == (10.0, "float")
    assert rows["embedding.max_tokens"] == (None, "int")
    assert all(meaning for *_, meaning in describe()), "every key needs a help text"


# ---- auth: API keys from YAML, environment and a keys file ----------------------------------------

DIGEST = key_digest("a-key")
OTHER = key_digest("b-key")


def test_keys_from_yaml_env_and_a_keys_file(tmp_path: Path) -> None:
    path = tmp_path / "akidb.yaml"
    path.write_text(f"auth:\n  keys:\n    - name: app\n      sha256: {DIGEST.upper()}\n      scopes: [read, write]\n")
    cfg = load_config(path)
    assert cfg.auth.keys == (ApiKeyEntry("app", DIGEST, ("read", "write")),)

    env = {"AKIDB_AUTH__KEYS": f'[{{"name": "ops", "sha256": "{OTHER}", "scopes": "read,admin"}}]'}
    assert load_config(path, env).auth.keys == (ApiKeyEntry("ops", OTHER, ("read", "admin")),)

    lines = tmp_path / "keys.jsonl"
    lines.write_text(f'{{"name": "ops", "sha256": "{OTHER}", "scopes": ["admin"]}}\n\n')
    cfg = load_config(path, {}, [f"auth.keys_file={lines}"])
    assert [k.name for k in cfg.auth.keys] == ["app", "ops"]

    listed = tmp_path / "keys.yaml"
    listed.write_text(f"- {{name: ops, sha256: {OTHER}, scopes: [read]}}\n")
    assert load_config(None, {}, [f"auth.keys_file={listed}"]).auth.keys[0].scopes == ("read",)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("{name: app}", "expected a list"),
        (f"[{{name: app, key: a-key, sha256: {DIGEST}, scopes: [read]}}]", "never the key itself"),
        ("[{name: app, sha256: abc, scopes: [read]}]", "64 hex digits"),
        (f"[{{name: app, sha256: {DIGEST}, scopes: [delete]}}]", "read, write, admin"),
        (f"[{{name: app, sha256: {DIGEST}, scopes: []}}]", "non-empty list"),
        (f"[{{sha256: {DIGEST}, scopes: [read]}}]", "name is required"),
        (
            f"[{{name: a, sha256: {DIGEST}, scopes: [read]}}, {{name: a, sha256: {OTHER}, scopes: [read]}}]",
            "used twice",
        ),
        ("[unclosed", "not a YAML/JSON list"),
        (f"[{{name: app, sha256: {DIGEST}, scopes: [read], collections: []}}]", "non-empty list of glob patterns"),
        (f"[{{name: app, sha256: {DIGEST}, scopes: [read], collections: [a, 3]}}]", "non-empty list of glob patterns"),
        (f"[{{name: app, sha256: {DIGEST}, scopes: [read], collections: {{a: b}}}}]", "non-empty list of glob"),
    ],
)
def test_bad_keys_name_the_record_and_never_echo_text(keys: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_config(None, {"AKIDB_AUTH__KEYS": keys})
    assert "a-key" not in str(err.value)


def test_a_key_may_name_its_collections_and_a_file_key_knows_its_source(tmp_path: Path) -> None:
    keys = f"[{{name: a, sha256: {DIGEST}, scopes: [read], collections: ['team-a-*', ' shared ', 'team-a-*']}}]"
    (entry,) = load_config(None, {"AKIDB_AUTH__KEYS": keys}).auth.keys
    assert entry.collections == ("team-a-*", "shared") and entry.source is None
    env = {"AKIDB_AUTH__KEYS": f'[{{"name": "b", "sha256": "{OTHER}", "scopes": ["read"], "collections": "x-*,y"}}]'}
    assert load_config(None, env).auth.keys[0].collections == ("x-*", "y")
    lines = tmp_path / "keys.jsonl"
    lines.write_text(f'{{"name": "c", "sha256": "{OTHER}", "scopes": ["read"]}}\n')
    (from_file,) = load_config(None, {}, [f"auth.keys_file={lines}"]).auth.keys
    assert from_file.collections is None and from_file.source == str(lines)


def test_bad_keys_file_and_half_a_tls_pair_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"auth\.keys_file: cannot read"):
        load_config(None, {}, [f"auth.keys_file={tmp_path / 'absent'}"])
    garbage = tmp_path / "keys"
    garbage.write_text("{not json\n")
    with pytest.raises(ConfigError, match="neither a YAML list nor JSON lines"):
        load_config(None, {}, [f"auth.keys_file={garbage}"])
    with pytest.raises(ConfigError, match="go together"):
        load_config(None, {}, ["server.tls_cert_file=/x.pem"])


def test_shape_buckets_parse_smallest_first_and_empty_turns_them_off() -> None:
    assert parse_shape_buckets(load_config().embedding.shape_buckets) == ((1, 16), (1, 32), (2, 16))
    assert parse_shape_buckets(" 2x32, 1X16 ,1x16") == ((1, 16), (2, 32))
    assert load_config(None, {"AKIDB_EMBEDDING__SHAPE_BUCKETS": ""}).embedding.shape_buckets == ""
    assert parse_shape_buckets("") == ()


@pytest.mark.parametrize("bad", ["16", "1x", "0x16", "1x16,big", "-1x8"])
def test_a_bad_shape_bucket_names_the_key(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"embedding\.shape_buckets: .* is not TEXTSxTOKENS"):
        load_config(None, {}, [f"embedding.shape_buckets={bad}"])


def test_a_worker_dials_one_gateway_or_a_list_of_them(tmp_path: Path) -> None:
    assert load_config().zmq.connect == ("tcp://127.0.0.1:5555",)
    path = tmp_path / "akidb.yaml"
    path.write_text("zmq:\n  connect: [tcp://a:5555, tcp://b:5555]\n")
    assert load_config(path).zmq.connect == ("tcp://a:5555", "tcp://b:5555")
    env = {"AKIDB_ZMQ__CONNECT": "tcp://a:1, tcp://b:2"}
    assert load_config(None, env).zmq.connect == ("tcp://a:1", "tcp://b:2")
    assert load_config(None, {}, ["zmq.connect=tcp://c:3"]).zmq.connect == ("tcp://c:3",)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tcp://a:1,", "zmq.connect: 'tcp://a:1,' has an empty item"),
        ("tcp://a:1,tcp://a:1", "names one value twice"),
    ],
)
def test_a_bad_gateway_list_names_the_key(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, {}, [f"zmq.connect={value}"])


def test_a_gateway_list_of_non_strings_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "akidb.yaml"
    path.write_text("zmq:\n  connect: [5555]\n")
    with pytest.raises(ConfigError, match=r"zmq.connect: \[5555\] is not a list of strings"):
        load_config(path)


def test_the_snapshot_hmac_key_is_never_shown_and_must_be_long() -> None:
    short = "s3cr3t-but-short"
    with pytest.raises(ConfigError, match=r"snapshot_hmac_key: 16 characters is too short") as err:
        load_config(None, {"AKIDB_STORAGE__SNAPSHOT_HMAC_KEY": short})
    assert short not in str(err.value)
    key = "k" * 40
    cfg = load_config(None, {}, [f"storage.snapshot_hmac_key={key}"])
    assert cfg.storage.snapshot_hmac_key == key
    assert key not in repr(cfg)


def test_a_database_url_password_in_a_config_error_is_redacted() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, {}, ["storage.max_restore_bytes=postgresql://akidb:hunter2@db/akidb"])
    assert "hunter2" not in str(err.value) and "postgresql://akidb:[redacted]@db/akidb" in str(err.value)


def test_storage_postgres_is_a_nested_group_from_yaml_env_and_cli(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("storage:\n  backend: postgres\n  postgres:\n    dsn: postgresql://db/akidb\n    pool_size: 3\n")
    cfg = load_config(
        path,
        env={"AKIDB_STORAGE__POSTGRES__STATEMENT_TIMEOUT_MS": "500"},
        overrides=["storage.postgres.pool_size=4"],
    )
    assert cfg.storage.backend == "postgres"
    assert (cfg.storage.postgres.dsn, cfg.storage.postgres.pool_size) == ("postgresql://db/akidb", 4)
    assert cfg.storage.postgres.statement_timeout_ms == 500
    keys = [row[0] for row in describe()]
    assert {"storage.backend", "storage.postgres.dsn", "storage.postgres.pool_size"} <= set(keys)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["storage.postgres.nope=1"], "unknown config key storage.postgres.nope"),
        (["storage.postgres.pool_size=0"], "storage.postgres.pool_size: 0 is below the minimum of 1"),
        (["storage.backend=postgres"], "storage.postgres.dsn is not set"),
        (["storage.backend=mysql"], "storage.backend: 'mysql' is not one of embedded, postgres"),
    ],
)
def test_bad_postgres_settings_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_the_dsn_stays_out_of_the_configs_repr() -> None:
    cfg = load_config(overrides=["storage.postgres.dsn=postgresql://akidb:hunter2@db/akidb"])
    assert "hunter2" not in repr(cfg) and cfg.storage.postgres.dsn is not None
