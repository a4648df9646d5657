"""The card of a model trained by ``main.py train``: what it is, what it learnt from, how, how well.

The card is saved in the checkpoint's metadata (``core.model.checkpoints``) and read by everything
that shows or checks a model: its name and version, the data it was trained on, its intended use,
the parent it started from, its preprocessing, the training settings, the data manifests and its
validation metrics. Metrics are stored as plain JSON (``plain_metrics``): a metric that is not
defined (an AUC on one class) is ``null``, never NaN.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from core.util.json_safe import json_safe

TRAINED_ON_PHANTOMS = (
    "LIDC-IDRI nodule shapes and ratings rendered into phantom chest CT (research demo, not for clinical use)"
)
TRAINED_ON_RANDOMISED = (
    "LIDC-IDRI nodule shapes and ratings rendered into phantom chest CT under randomised scan protocols "
    "(research demo, not for clinical use)"
)
TRAINED_ON_CACHE = (
    "LIDC-IDRI CT images and readers' ratings, train split (research use, not for clinical use)"
)
INTENDED_USE = "research demo; not for clinical use"


def plain_metrics(metrics: dict) -> dict:
    """``metrics`` as plain JSON data: numpy numbers become Python ones, NaN and infinities ``None``."""
    return json.loads(json.dumps(json_safe(metrics), default=float, allow_nan=False))


def training_card(
    *,
    name: str,
    on_cache: bool,
    parent: Mapping | None,
    preprocessing: dict,
    training: dict,
    data: dict,
    val_metrics: dict,
    version: str | None = None,
    randomised: bool = False,
) -> dict:
    """The card of a freshly trained model. ``on_cache``: trained on a prepared LIDC cache (else on
    phantoms; ``randomised``: rendered under random scan protocols, ``train --randomise``);
    ``parent``: the card of the checkpoint it started from, if any; ``version`` defaults to today's
    date (YYYYMMDD)."""
    return {
        "name": name,
        "version": version or time.strftime("%Y%m%d"),
        "trained_on": TRAINED_ON_CACHE
        if on_cache
        else (TRAINED_ON_RANDOMISED if randomised else TRAINED_ON_PHANTOMS),
        "intended_use": INTENDED_USE,
        "parent": None
        if parent is None
        else {"name": parent.get("name"), "weights_sha256": parent.get("weights_sha256")},
        "preprocessing": preprocessing,
        "training": training,
        "data": data,
        "metrics": {"val": plain_metrics(val_metrics) | {"split": "val"}},
    }
