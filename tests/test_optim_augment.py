import pytest
import torch

from experiments.augment import augment_batch, crop_flip
from experiments.config import OptimCfg
from experiments.optim import lr_factor


def test_multistep_and_warmup_by_hand():
    cfg = OptimCfg(schedule="multistep", milestones=[0.5, 0.75], gamma=0.1, epochs=1)
    assert [lr_factor(cfg, s, 100) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    warm = OptimCfg(warmup_steps=4, epochs=1)
    assert [lr_factor(warm, s, 100) for s in (0, 1, 3, 10)] == pytest.approx([0.25, 0.5, 1.0, 1.0])


def test_crop_flip_is_a_shifted_window_of_the_padded_image():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    dy, dx = torch.randint(0, 9, (2,), generator=g), torch.randint(0, 9, (2,), generator=g)
    flip = torch.rand(2, generator=g) < 0.5
    out = crop_flip(x, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(2):
        expected = padded[i, :, dy[i] : dy[i] + 8, dx[i] : dx[i] + 8]
        assert torch.equal(out[i], expected.flip(-1) if flip[i] else expected)


def test_augmentation_replays_for_the_same_seed_and_step():
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(augment_batch("crop_flip", x, 1, 7), augment_batch("crop_flip", x, 1, 7))
    assert not torch.equal(augment_batch("crop_flip", x, 1, 7), augment_batch("crop_flip", x, 1, 8))
    assert augment_batch("none", x, 1, 7) is x
