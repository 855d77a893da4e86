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
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["QUANTIZE_MODES", "quantize_model"]

QUANTIZE_MODES = ("none", "int8", "bf16")


def quantize_model(model: nn.Module, mode: str | None) -> nn.Module:
    """``model`` for inference in ``mode`` (none | int8 | bf16), in eval mode.

    ``int8`` works on the CPU only (torch's quantized kernels); the model is converted in
    place where torch allows and returned.
    """
    mode = mode or "none"
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"quantize={mode!r}; use one of {', '.join(QUANTIZE_MODES)}")
    model = model.eval()
    if mode == "none":
        return model
    if mode == "bf16":
        return model.to(torch.bfloat16)
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ValueError(f"int8 quantization runs on the CPU only; the model is on {device}")
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's own deprecation notices, once per call
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(
            model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True
        )
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    n = sum(1 for m in quantized.modules() if isinstance(m, DynamicLinear))
    logger.info("int8: %d linear layers quantized (weights per output channel)", n)
    return quantized
