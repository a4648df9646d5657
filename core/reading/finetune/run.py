"""One fine-tuning run as a generator of the engine's events, the new model's card, and keeping it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from core.model.patches import PatchConfig
from core.reading.finetune.comparison import compare, effect, not_worse
from core.reading.finetune.options import FinetuneOptions
from core.reading.finetune.split import FinetuneData, build_finetune_data, describe
from core.reading.library import Library
from core.util.json_safe import json_safe


def finetune_card(parent, config, data: FinetuneData, done: dict, comparison: dict) -> dict:
    """The new model's card: its parent, the data, the training and the comparison."""
    from core.training.trainer import manifest

    parent_card = parent.card
    name = str(parent_card.get("name", "mtmr"))
    d = data.description
    trained_on = (
        f"{parent_card.get('trained_on', 'unknown data')}; fine-tuned on {d['train_nodules']} "
        f"reader-confirmed nodules from {len(d['train_studies'])} studies of the local library"
        + (" mixed with the phantom train split" if d["phantom_nodules"] else "")
    )
    card = {
        "name": name if name.endswith("-ft") else f"{name}-ft",
        "trained_on": trained_on,
        "intended_use": parent_card.get("intended_use", "research demo; not for clinical use"),
        "parent": {
            "version_id": parent.id,
            "name": parent_card.get("name"),
            "version": parent_card.get("version"),
            "weights_sha256": parent_card.get("weights_sha256"),
        },
        "preprocessing": parent_card["preprocessing"],
        # the scan protocols it can be trusted on are its parent's: fine-tuning starts from those weights
        **({"domain": parent_card["domain"]} if isinstance(parent_card.get("domain"), dict) else {}),
        "training": config.to_dict()
        | {
            "kind": "finetune",
            "device": done["device"],
            "best_epoch": done["best_epoch"],
            "seconds": round(done["seconds"], 1),
        },
        "data": {
            "library": d,
            "train": manifest(
                data.train, "library-train" + ("+phantom-train" if d["phantom_nodules"] else "")
            ),
            "val": manifest(data.val, "library-holdout"),
        },
        "metrics": {
            "val": json_safe(comparison["new"]) | {"split": "library-holdout"},
            "comparison": json_safe(comparison),
        },
    }
    if "threshold" in parent_card:
        card["threshold"] = parent_card["threshold"]
    return json_safe(card)


def run_finetune(
    registry,
    library: Library,
    options: FinetuneOptions = FinetuneOptions(),  # noqa: B008 (frozen, so immutable)
    state_path: str | Path | None = None,
    cancelled: Callable[[], bool] | None = None,
    parent_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[dict]:
    """Fine-tune the active model (or version ``parent_id``) on ``library``: yields ``{"event": ...}``.

    ``parent`` (which version it starts from, and any note on why it is the demo), ``data`` (the
    description of the split), then the engine's ``resumed`` / ``step`` / ``epoch`` / ``done``, then
    ``finished`` with ``model``, ``card``, ``comparison`` ({"active": ..., "new": ...}), ``verdict``
    (``not_worse``), ``effect`` (``comparison.effect``: AUC and ECE change on the held-out nodules
    with bootstrap intervals; also in the card's ``metrics.effect``). ``TrainingCancelled`` and any
    error propagate; nothing is written but the training state at ``state_path``.
    """
    from core.model.device import pick_device
    from core.training.trainer import train

    parent = registry.get(parent_id) if parent_id else registry.active()
    yield {"event": "parent", "version": parent, "note": parent.note}
    model, card = registry.load(parent.id)
    parent = replace(parent, card=card)
    patch = PatchConfig.from_dict(card["preprocessing"])
    data = build_finetune_data(
        library, patch, options.with_phantoms, options.seed, options.val_fraction, progress, options.randomise
    )
    yield {"event": "data", "description": data.description, "text": describe(data.description)}
    threshold = float(card.get("threshold", 0.5))
    config = options.train_config(threshold, patch.hu_range)
    done = None
    for event in train(config, data.train, data.val, model, cancelled=cancelled, state_path=state_path):
        if event["event"] == "done":
            done = event
        yield event
    if done is None:  # another rank of a distributed run: rank 0 finishes
        return
    device = pick_device(options.device)
    before, _ = registry.load(parent.id)  # the parent's own weights (train() changed ``model``)
    probabilities: dict = {}
    comparison = compare(
        {"active": before, "new": done["model"]},
        data.val,
        device,
        {"active": threshold, "new": threshold},
        probabilities,
    )
    labels = data.val.labels[data.val.labels >= 0]
    change = effect(labels, probabilities["new"], probabilities["active"], seed=options.seed)
    done["model"].cpu()
    new_card = finetune_card(parent, config, data, done, comparison)
    new_card["metrics"]["effect"] = json_safe(change)
    yield {
        "event": "finished",
        "model": done["model"],
        "card": new_card,
        "comparison": comparison,
        "verdict": not_worse(comparison),
        "effect": change,
        "parent": parent,
        "data": data.description,
    }


def keep(registry, finished: dict, activate: bool = False):
    """Store the new model as a version (and activate it when asked). Returns the ``Version``."""
    version = registry.add(finished["model"], finished["card"])
    if activate:
        version = registry.activate(version.id)
    return version
