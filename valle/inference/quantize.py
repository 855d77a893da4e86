"""Weight-only low-precision inference through torch's own quantization (issue 14).

Shape legend: none (whole modules are converted).

- ``int8``: every ``nn.Linear`` of the model (attention, feed-forward, heads, AdaLN) becomes
  torch's dynamically quantized linear (``torch.ao.quantization.quantize_dynamic``, int8
  weights with one scale per output channel, activations quantized per call, fbgemm/onednn
  kernels). A decoding step reads a quarter of the fp32 weight bytes. Embeddings stay fp32:
  a tied NAR head keeps its embedding in fp32 and gets its own int8 copy.
- ``bf16``: the whole model in bfloat16 (half the bytes; fast only on CPUs with bf16 matrix
  instructions, or on a GPU).

Inference only: a quantized model cannot be trained or saved back as a valle checkpoint.

:func:`quantize_model` returns a quantized copy and leaves the caller's model as it was (its
weights, dtype, device and train/eval mode), so a float32 model can be measured or used next
to its int8 or bf16 copy; drop the original to free its memory. ``none`` converts nothing and
returns the model itself, in eval mode.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable

import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["QUANTIZE_MODES", "QUANTIZERS", "quantize_model"]


def _as_is(model: nn.Module) -> nn.Module:
    """``none``: the model itself, in eval mode."""
    return model.eval()


def _bf16(model: nn.Module) -> nn.Module:
    """``bf16``: a copy of the whole model in bfloat16, in eval mode."""
    return copy.deepcopy(model).to(torch.bfloat16).eval()


def _int8(model: nn.Module) -> nn.Module:
    """``int8``: a copy whose ``nn.Linear`` layers are torch's dynamic int8 linears (CPU)."""
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ValueError(f"int8 quantization runs on the CPU only; the model is on {device}")
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's own deprecation notices, once per call
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(
            copy.deepcopy(model).eval(),
            {nn.Linear: per_channel_dynamic_qconfig},
            dtype=torch.qint8,
            inplace=True,  # on the copy
        )
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    n = sum(1 for m in quantized.modules() if isinstance(m, DynamicLinear))
    logger.info("int8: %d linear layers quantized (weights per output channel)", n)
    return quantized


# The one list of modes: the CLIs' --quantize choices are its keys (QUANTIZE_MODES).
QUANTIZERS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "none": _as_is,
    "int8": _int8,
    "bf16": _bf16,
}
QUANTIZE_MODES = tuple(QUANTIZERS)


def quantize_model(model: nn.Module, mode: str | None) -> nn.Module:
    """A copy of ``model`` for inference in ``mode`` (int8 | bf16), in eval mode; with ``none``
    (or None) the model itself, put in eval mode.

    The caller's model is never converted: use the returned one. ``int8`` works on the CPU only
    (torch's quantized kernels).
    """
    mode = mode or "none"
    if mode not in QUANTIZERS:
        raise ValueError(f"quantize={mode!r}; use one of {', '.join(QUANTIZERS)}")
    return QUANTIZERS[mode](model)
