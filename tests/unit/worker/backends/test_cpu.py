"""CPU feature detection behind `embedding.precision: auto`."""

from __future__ import annotations

from worker.backends.cpu import auto_precision, cpu_flags, has_native_bf16

ZEN3 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\n"
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"


def test_flags_come_from_the_first_processor() -> None:
    assert cpu_flags(ZEN3) == {"fpu", "sse2", "avx", "avx2", "fma"}


def test_no_flags_line_means_no_flags() -> None:
    assert cpu_flags("processor\t: 0\n") == frozenset()


def test_avx2_only_runs_f32_even_if_the_engine_claims_bf16() -> None:
    flags = cpu_flags(ZEN3)
    assert not has_native_bf16(flags)
    assert auto_precision(flags, ["FP32", "BF16"]) == "f32"


def test_amx_runs_bf16_when_the_engine_supports_it() -> None:
    flags = cpu_flags(SAPPHIRE_RAPIDS)
    assert has_native_bf16(flags)
    assert auto_precision(flags, ["FP32", "BF16", "INT8"]) == "bf16"
    assert auto_precision(flags, ["FP32"]) == "f32"


def test_avx512_bf16_alone_is_native() -> None:
    assert has_native_bf16(frozenset({"avx512_bf16"}))


def test_this_machine_reads_its_own_flags() -> None:
    # Every Linux x86 machine lists sse2; the test is that /proc/cpuinfo is parsed at all.
    flags = cpu_flags()
    assert not flags or "sse2" in flags or "fp" in flags
