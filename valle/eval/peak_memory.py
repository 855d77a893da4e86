"""Peak memory growth over a block of work, for the speed benchmarks.

Shape legend: none (memory is counted in bytes, reported in MiB).

On CUDA: ``torch.cuda.max_memory_allocated`` above the memory allocated before the block. On
the CPU: the growth of the process' peak RSS (VmHWM, reset to the current RSS through
``/proc/self/clear_refs``); where that reset is not allowed, the growth of ``ru_maxrss``, a
lower bound. :attr:`PeakMemory.kind` says which one was measured.
"""

from __future__ import annotations

import resource
from pathlib import Path

import torch

__all__ = ["PeakMemory"]


class PeakMemory:
    """``with PeakMemory(device) as mem: ...``; then ``mem.mb`` (MiB) and ``mem.kind``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = ""
        self.mb = float("nan")
        self._base: int | None = None
        self._reset = False

    @staticmethod
    def _status(key: str) -> int | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024  # kB -> bytes
        except OSError:
            return None
        return None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._base = int(torch.cuda.memory_allocated(self.device))
            torch.cuda.reset_peak_memory_stats(self.device)
            self.kind = "cuda max_memory_allocated growth"
            return self
        self._base = self._status("VmRSS")
        try:  # "5" resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)
            Path("/proc/self/clear_refs").write_text("5")
            self._reset = self._base is not None
        except OSError:
            self._reset = False
        if self._reset:
            self.kind = "CPU peak RSS growth (VmHWM)"
        else:
            self._base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.kind = "CPU ru_maxrss growth (lower bound)"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._reset:
            peak = self._status("VmHWM") or 0
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.mb = max(0, peak - (self._base or 0)) / 2**20
