"""Local convolutions over frames (valle.modules.local_conv) and the NAR option that uses them."""

from __future__ import annotations

import pytest
import torch

from valle.config import ConfigError
from valle.modules.local_conv import LocalConvStack
from valle.testing.model import dummy_batch, tiny_config, tiny_model

CONVS = "nar.local_convs={layers: 2, kernel_size: 5}"


def test_padding_never_reaches_valid_frames_and_stays_as_given() -> None:
    torch.manual_seed(0)
    stack = LocalConvStack(8, layers=3, kernel_size=5)
    x = torch.randn(2, 10, 8)
    lens = torch.tensor([10, 6])
    noisy = x.clone()
    noisy[1, 6:] = 100.0 * torch.randn(4, 8)
    a, b = stack(x, lens), stack(noisy, lens)
    assert torch.allclose(a[1, :6], b[1, :6], atol=1e-6)
    assert torch.equal(b[1, 6:], noisy[1, 6:])
    # a row alone gives what it gives in the batch
    assert torch.allclose(stack(x[1:, :6], lens[1:]), a[1:, :6], atol=1e-6)
    # and each output frame sees its neighbours: changing frame 0 moves frame 2 (3 blocks x 2)
    moved = x.clone()
    moved[0, 0] += torch.randn(8)
    assert not torch.allclose(stack(moved, lens)[0, 2], a[0, 2])
    assert torch.allclose(stack(moved, lens)[0, 7:], a[0, 7:], atol=1e-6)  # beyond 3 x 2 frames


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="odd"):
        LocalConvStack(8, layers=1, kernel_size=4)
    with pytest.raises(ConfigError, match="local_convs"):
        tiny_config("valle", overrides=["nar.local_convs={layers: 0, kernel_size: 3}"])


@pytest.mark.parametrize("variant", ["valle", "vallr"])
def test_nar_with_local_convs_trains_and_ignores_padding(variant: str) -> None:
    model = tiny_model(0, variant, overrides=[CONVS])
    assert model.nar.local_convs is not None
    assert tiny_model(0, variant).nar.local_convs is None  # off by default
    batch = dummy_batch(model.config, batch_size=3, audio_len=(6, 12), seed=2)
    loss, _ = model.nar.loss(batch, stage=1)
    loss.backward()
    grads = [p.grad for p in model.nar.local_convs.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_nar_prompt_and_target_are_convolved_apart() -> None:
    """The prompt's frames never reach the target's through the convolutions: with the
    transformer's attention to the prompt cut off, changing the prompt changes nothing."""
    model = tiny_model(0, "valle", overrides=[CONVS]).eval()
    batch = dummy_batch(model.config, batch_size=2, audio_len=(6, 9), seed=5)
    seen: list[torch.Tensor] = []
    convs = model.nar.local_convs
    assert convs is not None
    handle = convs.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    args = [batch["text_tokens"], batch["text_lens"]]
    codes, lens = batch["audio_codes"], batch["audio_lens"]
    prompt = batch["prompt_codes"]
    other = torch.randint(0, 16, prompt.shape)
    with torch.no_grad():
        model.nar(*args, prompt, batch["prompt_lens"], codes, lens, 2)
        model.nar(*args, other, batch["prompt_lens"], codes, lens, 2)
    handle.remove()
    assert len(seen) == 4  # prompt, target per call
    assert not torch.allclose(seen[0], seen[2])  # the prompts differ
    assert torch.allclose(seen[1], seen[3])  # the targets' conv outputs do not
