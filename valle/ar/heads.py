"""AR output heads; a head owns its loss.

Shape legend: B batch, N steps, D model width, V classes.
"""

from __future__ import annotations

from torch import Tensor, nn

from valle.modules.metrics import masked_token_loss

__all__ = ["CategoricalHead", "HEADS"]


class CategoricalHead(nn.Module):
    """Logits over ``codebook_size + 1`` classes (the codes plus EOS); cross entropy loss."""

    def __init__(self, d_model: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.proj = nn.Linear(d_model, num_classes)

    def forward(self, h: Tensor) -> Tensor:
        return self.proj(h)  # (B, N, V)

    def loss(
        self, logits: Tensor, targets: Tensor, mask: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """CE over the valid audio targets (B, N); metrics ``loss``, ``acc``, ``top10_acc``."""
        return masked_token_loss(logits, targets, mask)


HEADS: dict[str, type] = {"categorical": CategoricalHead}
