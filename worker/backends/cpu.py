"""What this CPU can do natively, for `embedding.precision: auto`."""

from __future__ import annotations

from pathlib import Path

# AMX tiles or AVX512-BF16 make bf16 matmuls several times faster than f32; without them
# bf16 would be emulated (or silently run as f32), so auto stays f32.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The first processor's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def has_native_bf16(flags: frozenset[str]) -> bool:
    """Whether the CPU computes bf16 matmuls in hardware."""
    return any(f in flags for f in BF16_FLAGS)


def auto_precision(flags: frozenset[str], engine_capabilities: list[str]) -> str:
    """bf16 where both the CPU flags and the engine say bf16 runs natively, else f32."""
    return "bf16" if has_native_bf16(flags) and "BF16" in engine_capabilities else "f32"
