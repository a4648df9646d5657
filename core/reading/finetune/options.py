"""Fine-tuning's options and their defaults, turned into the training engine's ``TrainConfig``."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class FinetuneOptions:
    epochs: int = 5
    lr: float = 1e-3  # the heads (from-scratch training uses 3e-3)
    trunk_lr_factor: float = 0.1  # the trunk learns at a tenth of that...
    freeze_trunk: bool = False  # ...or not at all
    batch_size: int = 32
    with_phantoms: bool = False  # mix in the phantom train split to keep what the model knew
    val_fraction: float = 0.25  # of the library's studies, at least one
    seed: int = 0
    device: str = "auto"
    patience: int = 5
    step_size: int = 10
    augment: bool = True  # per-sample augmentation (core.training.augment) of every batch
    randomise: bool = True  # the phantom nodules mixed in are rendered under random scan protocols

    def to_dict(self) -> dict:
        return asdict(self)

    def train_config(self, threshold: float = 0.5, hu_range: tuple[float, float] = (-1100.0, 500.0)):
        """``hu_range``: the model's preprocessing's, which the HU jitter of the augmentation needs."""
        from core.training.augment import AugmentConfig
        from core.training.trainer import TrainConfig

        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            trunk_lr_factor=self.trunk_lr_factor,
            freeze_trunk=self.freeze_trunk,
            step_size=self.step_size,
            patience=self.patience,
            seed=self.seed,
            device=self.device,
            threshold=threshold,
            augment=AugmentConfig(hu_range=tuple(hu_range)).to_dict() if self.augment else None,
        )
