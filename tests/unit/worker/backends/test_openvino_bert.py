"""The OpenVINO encoder in-process, with the real MiniLM weights, against sentence-transformers' vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.config import EmbeddingConfig
from tests.support import references as refs
from worker.embedder import Embedder
from worker.loader import ModelLoadError, ModelSource, locate
from worker.tokenize import TextTokenizer

ov = pytest.importorskip("openvino", reason="OpenVINO is installed on x86 only (pyproject marker)")

from worker.backends import cpu  # noqa: E402
from worker.backends.openvino_bert import OpenVinoBertEncoder  # noqa: E402
from worker.backends.openvino_graph import bert_hidden  # noqa: E402

REF = refs.load("minilm_reference")
POOLING_REF = refs.load("minilm_pooling_reference")
TEXTS = [str(t) for t in REF["texts"]]


@pytest.fixture(scope="module")
def source() -> ModelSource:
    return locate(EmbeddingConfig())


def embedder(source: ModelSource, precision: str = "f32", cache_dir: Path | None = None) -> Embedder:
    encoder = OpenVinoBertEncoder(source, precision, 0, cache_dir)
    return Embedder(source, TextTokenizer.from_folder(source.path, source.max_tokens), encoder, 32)


def assert_parity(model: Embedder, bar: float) -> None:
    out = model.embed(TEXTS)
    cos = refs.cosines(out.vectors, REF["embeddings"])
    assert cos.min() >= bar, f"texts[{int(cos.argmin())}] cosine {cos.min():.7f} < {bar}"
    assert out.token_counts == REF["token_counts"].tolist()  # includes three truncated at 256
    assert out.input_tokens == REF["input_tokens"].tolist()


def test_f32_matches_sentence_transformers_from_the_safetensors(source: ModelSource) -> None:
    model = embedder(source, "f32")
    assert (model.info.backend, model.info.device, model.info.precision) == ("openvino", "cpu", "f32")
    assert model.encoder.graph == "safetensors"  # type: ignore[attr-defined]
    assert_parity(model, refs.PARITY_F32)


def test_forced_bf16_reports_what_really_runs_and_holds_parity(source: ModelSource) -> None:
    model = embedder(source, "bf16")
    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    # Without native bf16 OpenVINO ignores the hint and computes f32: the worker must say so.
    assert model.info.precision == ("bf16" if "BF16" in capabilities else "f32")
    assert_parity(model, refs.parity_bar(model.info.precision))


def test_auto_precision_follows_this_cpu(source: ModelSource) -> None:
    model = embedder(source, "auto")
    flags = cpu.cpu_flags()
    expected = cpu.auto_precision(flags, ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    assert model.info.precision == expected
    if not cpu.has_native_bf16(flags):  # e.g. the AVX2-only EPYC the suite runs on
        assert model.info.precision == "f32"


@pytest.mark.parametrize("how", ["mean", "cls", "last"])
def test_every_pooling_matches_the_reference(source: ModelSource, how: str) -> None:
    texts = [str(t) for t in POOLING_REF["texts"]]
    got = embedder(source).embed(texts, pooling=how, normalize=False).vectors
    assert refs.cosines(got, POOLING_REF[how]).min() >= refs.PARITY_F32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), np.linalg.norm(POOLING_REF[how], axis=1), rtol=1e-4)


def test_unknown_pooling_is_the_jobs_fault(source: ModelSource) -> None:
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        embedder(source).embed(["x"], pooling="max")


def shipped_ir_folder(source: ModelSource, tmp_path: Path) -> Path:
    """A copy of the model folder that also ships openvino/openvino_model.xml the way optimum exports it:
    int64 input_ids, attention_mask and token_type_ids in, last_hidden_state out."""
    folder = tmp_path / "model"
    folder.mkdir()
    for item in source.path.iterdir():
        (folder / item.name).symlink_to(item)
    params = [
        ov.opset15.parameter([-1, -1], np.int64, name=n) for n in ("input_ids", "attention_mask", "token_type_ids")
    ]
    ids, mask = (ov.opset15.convert(p, "i32").output(0) for p in params[:2])
    result = ov.opset15.result(bert_hidden(source.path, source.config, ids, mask), name="last_hidden_state")
    result.output(0).get_tensor().set_names({"last_hidden_state"})
    ov.save_model(ov.Model([result], params), folder / "openvino" / "openvino_model.xml", compress_to_fp16=False)
    return folder


def test_a_shipped_openvino_ir_is_preferred_and_matches(source: ModelSource, tmp_path: Path) -> None:
    folder = shipped_ir_folder(source, tmp_path)
    shipped = ModelSource(source.name, folder, source.family, source.pooling, source.max_tokens, (), source.config)
    model = embedder(shipped)
    assert model.encoder.graph == "openvino/openvino_model.xml"  # type: ignore[attr-defined]
    assert_parity(model, refs.PARITY_F32)


def test_compiled_model_cache_is_written_then_reused(source: ModelSource, tmp_path: Path) -> None:
    embedder(source, cache_dir=tmp_path / "ov")
    blobs = {p: p.stat().st_mtime_ns for p in (tmp_path / "ov").glob("*.blob")}
    assert len(blobs) == 1
    assert_parity(embedder(source, cache_dir=tmp_path / "ov"), refs.PARITY_F32)
    # A hit: the blob was read, not compiled and written again.
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "ov").glob("*.blob")} == blobs


def test_folder_without_safetensors_says_so(source: ModelSource, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    broken = ModelSource(source.name, tmp_path, "bert", "mean", 256, (), source.config)
    with pytest.raises(ModelLoadError, match=r"no \.safetensors in"):
        OpenVinoBertEncoder(broken, "f32", 0, None)


def test_damaged_weights_are_a_load_error_that_says_download_again(source: ModelSource, tmp_path: Path) -> None:
    """The same message as the MLX backends give, not a SafetensorError escaping from the worker."""
    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not-json")
    broken = ModelSource(source.name, tmp_path, "bert", "mean", 256, (), source.config)
    with pytest.raises(ModelLoadError, match=r"cannot read .*model\.safetensors.*download the model again"):
        OpenVinoBertEncoder(broken, "f32", 0, None)


def test_weights_that_do_not_fit_name_the_missing_tensor(source: ModelSource, tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"embeddings.word_embeddings.weight": np.zeros((8, 4), np.float32)}, str(tmp_path / "model.safetensors"))
    broken = ModelSource(source.name, tmp_path, "bert", "mean", 256, (), source.config)
    with pytest.raises(ModelLoadError, match=r"position_embeddings\.weight is missing"):
        OpenVinoBertEncoder(broken, "f32", 0, None)


BUCKETS = ((1, 16), (1, 32), (2, 16), (2, 32))


def test_static_shape_buckets_hold_parity_alone_and_in_pairs(source: ModelSource) -> None:
    """Padding up to a bucket (tokens and rows) must not move any vector past the parity bar."""
    encoder = OpenVinoBertEncoder(source, "f32", 0, None, BUCKETS)
    model = Embedder(source, TextTokenizer.from_folder(source.path, source.max_tokens), encoder, 32)
    assert_parity(model, refs.PARITY_F32)  # one 32-text call: the dynamic model
    short = [i for i, n in enumerate(REF["token_counts"]) if n <= 32]
    assert len(short) >= 3 and any(REF["token_counts"][i] <= 16 for i in short)
    alone = np.stack([model.embed([TEXTS[i]]).vectors[0] for i in short])
    paired = np.concatenate(
        [model.embed([TEXTS[i] for i in short[j : j + 2]]).vectors for j in range(0, len(short), 2)]
    )
    for got in (alone, paired):
        cos = refs.cosines(got, REF["embeddings"][short])
        assert cos.min() >= refs.PARITY_F32, f"texts[{short[int(cos.argmin())]}] cosine {cos.min():.7f}"


@pytest.mark.parametrize("how", ["mean", "cls", "last"])
def test_every_pooling_is_mask_aware_in_a_bucket(source: ModelSource, how: str) -> None:
    texts = [str(t) for t in POOLING_REF["texts"]]
    encoder = OpenVinoBertEncoder(source, "f32", 0, None, ((1, 64),))
    model = Embedder(source, TextTokenizer.from_folder(source.path, source.max_tokens), encoder, 32)
    got = np.stack([model.embed([t], pooling=how, normalize=False).vectors[0] for t in texts])
    assert refs.cosines(got, POOLING_REF[how]).min() >= refs.PARITY_F32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), np.linalg.norm(POOLING_REF[how], axis=1), rtol=1e-4)


def test_a_pass_takes_the_smallest_bucket_that_holds_it(source: ModelSource) -> None:
    encoder = OpenVinoBertEncoder(source, "f32", 0, None, ((2, 32), (1, 16), (1, 32)))
    assert [encoder.bucket(1, 9), encoder.bucket(1, 17), encoder.bucket(2, 5)] == [(1, 16), (1, 32), (2, 32)]
    assert encoder.bucket(3, 8) is None and encoder.bucket(1, 33) is None  # the dynamic model


def test_pad_to_masks_padded_tokens_and_repeats_the_first_row() -> None:
    from worker.backends.openvino_bert import pad_to

    ids, mask = pad_to(np.array([[101, 7, 102]], np.int32), np.ones((1, 3), np.int32), 2, 5)
    assert ids.tolist() == [[101, 7, 102, 0, 0]] * 2
    assert mask.tolist() == [[1, 1, 1, 0, 0]] * 2


def test_each_bucket_is_one_more_cached_blob_and_a_restart_reads_them(source: ModelSource, tmp_path: Path) -> None:
    OpenVinoBertEncoder(source, "f32", 0, tmp_path / "ov", ((1, 16), (2, 16)))
    blobs = {p: p.stat().st_mtime_ns for p in (tmp_path / "ov").glob("*.blob")}
    assert len(blobs) == 3  # the dynamic model and one per bucket
    again = OpenVinoBertEncoder(source, "f32", 0, tmp_path / "ov", ((1, 16), (2, 16)))
    assert again.bucket(1, 10) == (1, 16)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "ov").glob("*.blob")} == blobs


def test_a_shipped_graph_runs_in_a_bucket_too(source: ModelSource, tmp_path: Path) -> None:
    """int64 inputs and token_type_ids: the reshape and the padding cover every input the graph takes."""
    folder = shipped_ir_folder(source, tmp_path)
    shipped = ModelSource(source.name, folder, source.family, source.pooling, source.max_tokens, (), source.config)
    encoder = OpenVinoBertEncoder(shipped, "f32", 0, None, ((1, 32),))
    assert encoder.bucket(1, 20) == (1, 32)
    model = Embedder(shipped, TextTokenizer.from_folder(folder, source.max_tokens), encoder, 32)
    short = [i for i, n in enumerate(REF["token_counts"]) if n <= 32]
    got = np.stack([model.embed([TEXTS[i]]).vectors[0] for i in short])
    assert refs.cosines(got, REF["embeddings"][short]).min() >= refs.PARITY_F32


@pytest.mark.parametrize(
    ("rows", "width", "shape"),
    [
        ((1, 13), (4, 16), (1, 16)),  # up to four texts stay exact: only the tokens round up
        ((4, 16), (4, 16), (4, 16)),
        ((5, 17), (4, 16), (8, 32)),
        ((31, 250), (4, 16), (32, 256)),
        ((3, 510), (4, 16), (3, 512)),  # never past the model's positions
        ((2, 600), (4, 16), (2, 600)),  # a pass already past them (another model) is left as it is
        ((7, 9), (1, 1), (7, 9)),  # "1x1": nothing padded
    ],
)
def test_on_grid_bounds_the_shapes_the_dynamic_model_meets(
    rows: tuple[int, int], width: tuple[int, int], shape: tuple[int, int]
) -> None:
    from worker.backends.openvino_bert import on_grid

    assert on_grid(*rows, width, 512) == shape


@pytest.mark.parametrize("how", ["mean", "cls", "last"])
def test_passes_padded_to_the_grid_hold_parity(source: ModelSource, how: str) -> None:
    """Five texts of mixed lengths: padded to 8 × a multiple of 16 on the grid, exactly as given without it."""
    texts = [str(t) for t in POOLING_REF["texts"]][:5]
    tokenizer = TextTokenizer.from_folder(source.path, source.max_tokens)
    on = Embedder(source, tokenizer, OpenVinoBertEncoder(source, "f32", 0, None, (), (4, 16)), 32)
    off = Embedder(source, tokenizer, OpenVinoBertEncoder(source, "f32", 0, None, (), (1, 1)), 32)
    got = on.embed(texts, pooling=how, normalize=False).vectors
    want = off.embed(texts, pooling=how, normalize=False).vectors
    assert refs.cosines(got, want).min() >= refs.PARITY_F32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), np.linalg.norm(want, axis=1), rtol=1e-4)
