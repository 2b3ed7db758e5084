"""Which precision and memory format a run uses on this machine (``trainer.precision: auto``, ``channels_last: auto``).

The decision is a pure function of what the machine accelerates, given as values, so it is testable for any
CPU kind without patching globals:

- GPU: ``auto`` is bf16-mixed where the GPU supports bf16 (Ampere and newer), else 16-mixed.
- CPU: ``auto`` is bf16-mixed only where bf16 is native — oneDNN runs bf16 kernels
  (``torch.ops.mkldnn._is_mkldnn_bf16_supported()``) *and* the CPU has bf16 dot-product instructions
  (AVX512-BF16 or AMX-BF16) that oneDNN may use — else 32-true. Without them a bf16 convolution falls back
  to im2col and a scalar bf16 GEMM: measured 7-8x slower than fp32 on an AVX2 AMD EPYC
  (``neo-bench train --preset tiny --size 480x270 --batch 8``: 32-true 7.94 images/s, bf16-mixed 1.00);
  an AVX-512 CPU without AVX512-BF16 (Skylake) passes oneDNN's check but only converts, so it stays fp32.
- ``channels_last: auto``: on where the convolutions run through channels-last kernels that are faster —
  x86 CPUs (oneDNN; fp32 1.3x, bf16 1.03x faster on AVX-512, see the README) and GPUs with mixed precision
  (tensor cores); off elsewhere.

An explicit ``bf16-mixed`` on a CPU without native bf16 is kept (the user asked for it) with one warning line
saying it will be several times slower and what to use instead.

Torch-free at import: :func:`detect_cpu` imports torch only when called (at trainer construction), so the
configuration check (``neo-train --check``) never loads it. The CPU kind follows what oneDNN and ATen are
allowed to use: ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`` makes an AVX-512 machine detect (and
run) as an AVX2 one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from neo.config.trainer_settings import AUTO, canonical_precision, channels_last_problems, is_auto

BF16_PRECISIONS = ("bf16-mixed", "bf16-true")
MIXED_PRECISIONS = ("16-mixed", "bf16-mixed")
X86_ISAS = ("AVX2", "AVX512")  # ATen CPU capabilities whose convolutions run through oneDNN
# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) that still include bf16 dot-product instructions.
ONEDNN_BF16_ISAS = ("avx512_core_bf16", "avx512_core_fp16", "avx10_1_512", "avx512_core_amx", "avx10_1_512_amx",
                    "avx512_core_amx_fp16", "avx10_1_512_amx_fp16", "avx10_2_512", "avx10_2_512_amx_2",
                    "all", "default")
SLOW_BF16_FACTOR = "2-8x"  # measured on an AVX2 AMD EPYC, tiny preset: 7x at 480x270, 2-6x at 320x180


@dataclass(frozen=True)
class CpuCapability:
    """What the CPU accelerates, as torch will use it.

    ``isa``: ATen's vector ISA (``torch.backends.cpu.get_cpu_capability()``: "AVX512", "AVX2", "DEFAULT", ...);
    ``onednn_bf16``: oneDNN runs bf16 kernels here; ``bf16_instructions``: the CPU has AVX512-BF16 or
    AMX-BF16 and oneDNN is allowed to use them.
    """

    isa: str
    onednn_bf16: bool
    bf16_instructions: bool

    @property
    def native_bf16(self) -> bool:
        """bf16 convolutions and matrix products run on bf16 hardware (faster than fp32, not emulated)."""
        return self.onednn_bf16 and self.bf16_instructions

    @property
    def onednn(self) -> bool:
        """Convolutions run through oneDNN (x86), which has fast channels-last kernels."""
        return self.isa.upper() in X86_ISAS

    def describe(self) -> str:
        """One phrase: ``AVX512 with native bf16`` / ``AVX2, no native bf16``."""
        return f"{self.isa} with native bf16" if self.native_bf16 else f"{self.isa}, no native bf16"

    def as_dict(self) -> dict[str, Any]:
        return {"isa": self.isa, "onednn_bf16": self.onednn_bf16, "bf16_instructions": self.bf16_instructions,
                "native_bf16": self.native_bf16}


# The two kinds of 2-core machine the demo was tuned on (tests and docs use them as examples).
AVX2_CPU = CpuCapability("AVX2", onednn_bf16=False, bf16_instructions=False)
AVX512_BF16_CPU = CpuCapability("AVX512", onednn_bf16=True, bf16_instructions=True)


def onednn_isa_allows_bf16(environ: dict[str, str] | None = None) -> bool:
    """Whether ``ONEDNN_MAX_CPU_ISA`` (or the older ``DNNL_MAX_CPU_ISA``) leaves oneDNN its bf16 instructions."""
    environ = os.environ if environ is None else environ
    cap = environ.get("ONEDNN_MAX_CPU_ISA") or environ.get("DNNL_MAX_CPU_ISA")
    return cap is None or cap.strip().lower() in ONEDNN_BF16_ISAS


def detect_cpu() -> CpuCapability:
    """This machine's :class:`CpuCapability` (imports torch; honours ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA)."""
    import torch

    isa = str(torch.backends.cpu.get_cpu_capability())
    onednn_bf16 = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    cpu = getattr(torch, "cpu", None)
    hardware = any(bool(getattr(cpu, name, lambda: False)())
                   for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return CpuCapability(isa, onednn_bf16, hardware and onednn_isa_allows_bf16())


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run trains at, what was asked for, why, and a warning when the choice is slow here."""

    precision: str
    requested: str
    reason: str
    warning: str | None = None

    def describe(self) -> str:
        """``32-true (auto: AVX2, no native bf16)`` or just ``bf16-mixed`` when it was asked for."""
        return f"{self.precision} (auto: {self.reason})" if self.requested == AUTO else self.precision


def choose_precision(requested: Any, *, on_gpu: bool, cuda_bf16: bool, cpu: CpuCapability) -> PrecisionChoice:
    """The Lightning precision for ``trainer.precision=requested`` on this device.

    ``on_gpu``: training runs on a CUDA GPU; ``cuda_bf16``: that GPU supports bf16; ``cpu``: the CPU's
    capability (used when ``on_gpu`` is false). Raises ValueError for a value that is not a precision.
    """
    canonical = canonical_precision(requested)
    if canonical is None:
        raise ValueError(f"trainer.precision={requested!r} is not a Lightning precision")
    if on_gpu:
        if canonical == AUTO:
            return PrecisionChoice("bf16-mixed" if cuda_bf16 else "16-mixed", AUTO,
                                   "GPU with bf16" if cuda_bf16 else "GPU without bf16")
        return PrecisionChoice(canonical, canonical, "asked for")
    if canonical == AUTO:
        return PrecisionChoice("bf16-mixed" if cpu.native_bf16 else "32-true", AUTO, cpu.describe())
    warning = None
    if canonical in BF16_PRECISIONS and not cpu.native_bf16:
        warning = (f"trainer.precision={canonical} on this CPU ({cpu.describe()}) will be several times slower than "
                   f"32-true ({SLOW_BF16_FACTOR} measured on AVX2): use trainer.precision=auto (32-true here).")
    return PrecisionChoice(canonical, canonical, "asked for", warning)


def choose_channels_last(requested: Any, *, on_gpu: bool, precision: str, cpu: CpuCapability) -> tuple[bool, str]:
    """``(channels_last, why)`` for ``channels_last=requested`` (true, false or ``auto``) at ``precision``."""
    if isinstance(requested, bool):
        return requested, "asked for"
    if not is_auto(requested):
        raise ValueError(" ".join(channels_last_problems(requested)))
    if on_gpu:
        mixed = precision in MIXED_PRECISIONS
        return mixed, "GPU with mixed precision (tensor cores)" if mixed else "GPU in full precision"
    if cpu.onednn:
        return True, f"{cpu.isa}: oneDNN channels-last kernels"
    return False, f"{cpu.isa}: no oneDNN channels-last kernels"
