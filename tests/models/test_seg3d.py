"""The learned segmenter's network: shapes, refusals, and that training on a toy batch learns."""

from __future__ import annotations

import pytest
import torch

from models.seg3d import Seg3DConfig, Seg3DNet, segmentation_loss


def test_logits_have_the_patch_shape_and_the_model_is_small():
    model = Seg3DNet().eval()
    out = model(torch.zeros(2, 1, 32, 32, 32))
    assert out["logits"].shape == (2, 1, 32, 32, 32)
    assert sum(p.numel() for p in model.parameters()) < 300_000  # weights well under 5 MB


@pytest.mark.parametrize("shape", [(1, 1, 30, 32, 32), (1, 2, 32, 32, 32), (1, 32, 32, 32)])
def test_a_patch_of_the_wrong_shape_is_refused_in_words(shape):
    with pytest.raises(ValueError, match="multiple of 4"):
        Seg3DNet()(torch.zeros(shape))


def test_config_round_trips_through_its_dict():
    config = Seg3DConfig(width=4)
    assert Seg3DConfig.from_dict(config.to_dict()) == config


def test_loss_is_lower_for_the_right_answer():
    target = torch.zeros(1, 1, 8, 8, 8)
    target[..., 2:6, 2:6, 2:6] = 1
    right = segmentation_loss((target * 2 - 1) * 8, target)
    wrong = segmentation_loss((1 - target * 2) * 8, target)
    assert right < 0.05 < 1.5 < wrong


def test_training_steps_lower_the_loss_on_a_toy_batch():
    torch.manual_seed(0)
    grid = torch.stack(torch.meshgrid(*[torch.arange(12.0)] * 3, indexing="ij"))
    centres = torch.tensor([[5.0, 6.0, 6.5], [6.5, 5.0, 5.0]])
    target = torch.stack([((grid - c[:, None, None, None]) ** 2).sum(0) < 9 for c in centres])[:, None]
    image = target.float() + 0.3 * torch.randn(target.shape)
    model = Seg3DNet(Seg3DConfig(width=4))
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-2)
    losses = []
    for _ in range(10):
        loss = segmentation_loss(model(image)["logits"], target.float())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.85 * losses[0]
