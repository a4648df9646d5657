"""A tiny end-to-end training run on CPU: events, learning, early stopping, cancel, checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.model.checkpoints import load_checkpoint, save_checkpoint
from core.training.trainer import (
    TrainConfig,
    TrainingCancelled,
    evaluate_model,
    manifest,
    train,
)
from models.mtmr import MTMRNet, MTMRNetConfig
from tests.core.training.fake_data import fake_dataset

TINY = MTMRNetConfig(depth=18, width=8, input_size=32)


def run(config: TrainConfig, **kwargs) -> list[dict]:
    torch.manual_seed(config.seed)  # the initial weights, too, follow the seed
    return list(train(config, fake_dataset(), fake_dataset(seed=1), model=MTMRNet(TINY), **kwargs))


def test_tiny_run_learns_and_reports_every_step_and_epoch():
    events = run(TrainConfig(epochs=6, batch_size=16, lr=3e-3, patience=10, seed=0))
    kinds = [e["event"] for e in events]
    assert kinds.count("epoch") == 6 and kinds[-1] == "done" and "step" in kinds
    step = next(e for e in events if e["event"] == "step")
    assert {"classification", "ranking", "attributes", "total"} <= set(step["loss"]) and step["eta_s"] >= 0
    done = events[-1]
    assert done["val"]["auc"] > 0.9  # big bright disks versus small ones
    assert done["val"]["n"] == 23  # the indeterminate nodule is left out of classification
    assert "spiculation" in done["val"]["attributes"]


def test_early_stopping_and_same_seed_same_result():
    a = run(TrainConfig(epochs=8, batch_size=16, patience=1, seed=3, lr=1e-6))
    epochs = [e for e in a if e["event"] == "epoch"]
    assert len(epochs) < 8  # a learning rate this small never improves for long
    b = run(TrainConfig(epochs=8, batch_size=16, patience=1, seed=3, lr=1e-6))
    assert [e["loss"]["total"] for e in a if e["event"] == "epoch"] == [
        e["loss"]["total"] for e in b if e["event"] == "epoch"
    ]


def test_cancel_stops_at_the_next_step():
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(TrainingCancelled):
        run(TrainConfig(epochs=3, batch_size=16), cancelled=cancelled)
    assert len(calls) == 3


def test_trained_model_round_trips_through_a_checkpoint(tmp_path):
    done = run(TrainConfig(epochs=2, batch_size=16))[-1]
    data = fake_dataset(seed=1)
    card = save_checkpoint(tmp_path / "m.safetensors", done["model"], {"data": manifest(data, "val")})
    model, card2 = load_checkpoint(tmp_path / "m.safetensors")
    assert card2["data"]["nodules"] == 24 and card2["weights_sha256"] == card["weights_sha256"]
    assert evaluate_model(model, data, "cpu")["auc"] == pytest.approx(done["val"]["auc"])
    # trained channels-last (core.model.device.conv_layout), handed back in the default layout
    conv = done["model"].trunk.layer1[0].conv1.weight
    assert conv.is_contiguous() and not conv.is_contiguous(memory_format=torch.channels_last)


def test_frozen_trunk_does_not_change():
    model = MTMRNet(TINY)
    before = [p.detach().clone() for p in model.trunk.parameters()]
    list(
        train(
            TrainConfig(epochs=1, batch_size=16, freeze_trunk=True),
            fake_dataset(),
            fake_dataset(),
            model=model,
        )
    )
    assert all((a == b).all() for a, b in zip(before, model.trunk.parameters(), strict=True))


def test_selection_can_require_an_attribute_error_limit():
    """With an impossible limit no later epoch counts as better: the first epoch is kept."""
    from core.training.trainer import TrainConfig, train
    from models.mtmr import MTMRNet, MTMRNetConfig
    from tests.core.training.fake_data import fake_dataset

    model = MTMRNet(MTMRNetConfig(depth=18, width=8, input_size=32))
    config = TrainConfig(epochs=3, batch_size=8, patience=10, max_attribute_mae=1e-9, ema=0.9)
    events = list(train(config, fake_dataset(), fake_dataset(seed=1), model))
    assert events[-1]["event"] == "done" and events[-1]["best_epoch"] == 1


def test_attribute_heads_can_start_at_the_training_means():
    import torch

    from core.training.trainer import init_attribute_bias
    from models.mtmr import MTMRNet, MTMRNetConfig
    from tests.core.training.fake_data import fake_dataset

    data = fake_dataset()
    model = MTMRNet(MTMRNetConfig(depth=18, width=8, input_size=32))
    for head in model.attribute_heads:  # whatever the features, the output is the bias alone
        torch.nn.init.zeros_(head.weight)
    init_attribute_bias(model, data)
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 1, 32, 32), torch.full((2,), 8.0))["attributes"]
    expected = np.clip(np.nanmean(data.attributes, axis=0), 0.02, 0.98)
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-5)
