"""Fine-tuning's options: the defaults, shared with the CLI, and the engine's configuration."""

from __future__ import annotations

from core.reading.finetune.options import FinetuneOptions


def test_the_cli_defaults_are_the_fine_tuning_defaults():
    from core.cli.finetune import _DEFAULTS

    defaults = FinetuneOptions()
    for name in ("epochs", "lr", "trunk_lr_factor", "batch_size", "val_fraction", "seed", "device"):
        assert getattr(_DEFAULTS, name) == getattr(defaults, name), name
    config = defaults.train_config(0.3)
    assert config.lr < 3e-3 and config.trunk_lr_factor == 0.1 and config.threshold == 0.3


def test_augmentation_is_on_by_default_and_can_be_left_out():
    config = FinetuneOptions().train_config(0.5, (-1000.0, 400.0))
    assert config.augment["hu_range"] == [-1000.0, 400.0] and config.augment["rotate_deg"] > 0
    assert FinetuneOptions(augment=False).train_config().augment is None
