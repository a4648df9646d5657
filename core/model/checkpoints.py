"""Checkpoints: weights in safetensors with the model card in the same file's metadata.

One file, so weights and card can never drift apart; written to a temporary file and moved into
place, so the previous checkpoint survives any failure; loaded without unpickling anything, its
weights hash checked against the card, so a truncated or edited file is refused with a clear reason.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path

import numpy as np

from core.util.json_safe import json_safe
from core.util.safetensors_io import (
    DocumentFormat,
    SafetensorsFileError,
    read_document,
    read_document_file,
    tensors_sha256,
    write_document_file,
)

CARD_SCHEMA = "mtmr-reader/model-card/1"
_PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile wrappers


class CheckpointError(SafetensorsFileError):
    """A checkpoint refused: ``path`` and ``reason``, the message naming both."""


CHECKPOINT = DocumentFormat(
    key="model_card",
    schema=CARD_SCHEMA,
    hash_key="weights_sha256",
    no_file="no such checkpoint file",
    no_document="no model card in the file: not an MTMR Reader checkpoint",
    not_json="the model card is not valid JSON",
    schema_name="model card schema",
    unreadable="weights cannot be read",
    damaged="weights do not match the hash in the model card (damaged or edited file)",
    error=CheckpointError,
)


def software_versions() -> dict:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}


def save_checkpoint(path: str | Path, model, card: dict) -> dict:
    """Write ``model``'s weights and ``card`` (config, preprocessing, data, metrics...) atomically."""
    state = {_strip(name): t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    card = dict(card)
    card.update(
        schema=CARD_SCHEMA,
        config=model.config.to_dict(),
        weights_sha256=tensors_sha256(state),
        software=software_versions(),
    )
    card.setdefault("date", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    text = json.dumps(json_safe(card), sort_keys=True, allow_nan=False)
    write_document_file(path, state, CHECKPOINT, text)
    return card


def model_title(card: dict) -> str:
    """The model's one name everywhere (predict, batch, report, the app's status bar): name and version."""
    return f"{card.get('name', 'model')} {card.get('version', '')}".strip()


def read_card(path: str | Path) -> dict:
    """The model card alone (cheap: reads the header, not the weights)."""
    return read_document(path, CHECKPOINT)


def read_verified(path: str | Path) -> tuple[dict, dict]:
    """The model card and the weights (names without wrapper prefixes), the weights checked against
    the card's hash; ``CheckpointError`` naming the file otherwise."""
    return read_document_file(path, CHECKPOINT, rename=_strip)


def rewrite_card(path: str | Path, update: dict) -> dict:
    """Merge ``update`` into the checkpoint's card and rewrite the file atomically with the very same
    weights (read back verified against the card's hash, written with that hash unchanged); the
    weights hash, schema and config cannot be updated this way. Returns the new card."""
    card, state = read_verified(path)
    fixed = {key: card.get(key) for key in ("schema", "config", "weights_sha256")}
    card = {**card, **update, **fixed}
    text = json.dumps(json_safe(card), sort_keys=True, allow_nan=False)
    write_document_file(path, state, CHECKPOINT, text)
    return card


def load_checkpoint(path: str | Path, device: str = "cpu"):
    """Rebuild the model from the card's config and load the weights strictly. Returns (model, card)."""
    from models.mtmr import MTMRNet, MTMRNetConfig

    path = Path(path)
    card, state = read_verified(path)
    try:
        model = MTMRNet(MTMRNetConfig(**card["config"]))
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(path, f"model card config is not usable: {exc}") from exc
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc))
        raise CheckpointError(path, f"weights do not fit the model: {detail[:200]}") from exc
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"{len(result.missing_keys)} weights missing (e.g. {result.missing_keys[0]})")
        if result.unexpected_keys:
            parts.append(f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[0]})")
        raise CheckpointError(path, "weights do not fit the model: " + "; ".join(parts))
    # NaN weights (a run that diverged) give NaN scores that reports and rankings would carry as blanks
    broken = next(
        (name for name, t in state.items() if t.is_floating_point() and not t.isfinite().all()), None
    )
    if broken is not None:
        raise CheckpointError(
            path, f"weights are not finite (NaN or infinite, e.g. {broken}): a damaged model"
        )
    return model.to(device).eval(), card


def _strip(name: str) -> str:
    """A weight's name without the prefixes DDP and torch.compile add (``module.``, ``_orig_mod.``)."""
    for prefix in _PREFIXES:
        while name.startswith(prefix):
            name = name[len(prefix) :]
    return name
