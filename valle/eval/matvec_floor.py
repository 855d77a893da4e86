"""The matrix-vector floor of a decoding step: ``x @ W.T`` once over every weight matrix.

Shape legend: B batch (rows of ``x``), D_in / D_out a weight matrix's input / output width.

Any decoder step that reads all its weights once needs at least the time of one pass of
``x (B, D_in) @ W.T`` over every linear layer (same dtype, device and threads): at batch 1 that
is the memory-bandwidth floor. Embeddings are left out (a step reads one row of them). An int8
layer (``--quantize int8``, torch's dynamically quantized Linear) is dequantized to float32
for the pass, so the floor stays the float32 one (its int8 weights are a quarter of those
bytes); a bf16 model's pass reads its bf16 weights.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn

from valle.eval.clock import sync

__all__ = ["MatvecPass", "float_weight", "is_linear", "matvec_floor_ms"]


def is_linear(m: nn.Module) -> bool:
    """A float or an int8 (dynamically quantized) linear layer."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return isinstance(m, (nn.Linear, DynamicLinear))


def float_weight(m: nn.Module) -> Tensor:
    """A linear layer's weight (D_out, D_in); an int8 one dequantized to float32."""
    w: Any = m.weight
    if callable(w):  # torch's dynamically quantized Linear: weight() is a quantized tensor
        return w().dequantize()
    return w


class MatvecPass:
    """One ``x @ W.T`` over every weight matrix of a module; calling it returns the seconds.

    ``x`` has ``batch`` rows and the weights' dtype and device.
    """

    def __init__(self, module: nn.Module, batch: int = 1) -> None:
        self.weights = [float_weight(m) for m in module.modules() if is_linear(m)]
        if not self.weights:
            raise ValueError("the module has no linear layers")
        self.device = self.weights[0].device
        self.xs = {
            w.shape[1]: torch.randn(batch, w.shape[1], dtype=w.dtype, device=self.device)
            for w in self.weights
        }  # D_in -> x (B, D_in)

    @torch.inference_mode()
    def __call__(self) -> float:
        sync(self.device)
        t0 = time.perf_counter()
        for w in self.weights:
            self.xs[w.shape[1]] @ w.T  # (B, D_out)
        sync(self.device)
        return time.perf_counter() - t0


def matvec_floor_ms(module: nn.Module, batch: int = 1, reps: int = 5) -> float:
    """Best of ``reps`` times (ms) of a :class:`MatvecPass` over ``module`` (after a warm-up)."""
    floor = MatvecPass(module, batch)
    floor()
    return 1000.0 * min(floor() for _ in range(reps))
