"""The paper's ablation (``main.py train --ablation``, ``docs/make_ablation.py``): per variant, the
loss weights it overrides in ``TrainConfig.loss`` (``models.losses.LossConfig`` fields)."""

ABLATIONS = {
    "single-task": {"ranking": 0.0, "attributes": 0.0, "classification": 1.0},
    "multi-task": {"ranking": 0.0},
    "mtmr": {},
}
