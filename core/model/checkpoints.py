"""Checkpoints: weights in safetensors with the model card in the same file's metadata.

One file, so weights and card can never drift apart; written to a temporary file and moved into
place, so the previous checkpoint survives any failure; loaded without unpickling anything, its
weights hash checked against the card, so a truncated or edited file is refused with a clear reason.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np

from core.util.json_safe import json_safe

CARD_SCHEMA = "mtmr-reader/model-card/1"
_CARD_KEY = "model_card"
_PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile wrappers


class CheckpointError(Exception):
    def __init__(self, path: str | Path, reason: str) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


def weights_hash(state: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def software_versions() -> dict:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}


def save_checkpoint(path: str | Path, model, card: dict) -> dict:
    """Write ``model``'s weights and ``card`` (config, preprocessing, data, metrics...) atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {_strip(name): tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    card = dict(card)
    card.update(
        schema=CARD_SCHEMA,
        config=model.config.to_dict(),
        weights_sha256=weights_hash(state),
        software=software_versions(),
    )
    card.setdefault("date", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(
            state,
            str(tmp),
            metadata={_CARD_KEY: json.dumps(json_safe(card), sort_keys=True, allow_nan=False)},
        )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return card


def model_title(card: dict) -> str:
    """The model's one name everywhere (predict, batch, report, the app's status bar): name and version."""
    return f"{card.get('name', 'model')} {card.get('version', '')}".strip()


def read_card(path: str | Path) -> dict:
    """The model card alone (cheap: reads the header, not the weights)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for malformed headers
        raise CheckpointError(path, f"not a readable safetensors file ({exc.__class__.__name__})") from exc
    if _CARD_KEY not in metadata:
        raise CheckpointError(path, "no model card in the file: not an MTMR Reader checkpoint")
    try:
        card = json.loads(metadata[_CARD_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(path, "the model card is not valid JSON") from exc
    if card.get("schema") != CARD_SCHEMA:
        raise CheckpointError(path, f"model card schema {card.get('schema')!r}, expected {CARD_SCHEMA!r}")
    return card


def load_checkpoint(path: str | Path, device: str = "cpu"):
    """Rebuild the model from the card's config and load the weights strictly. Returns (model, card)."""
    from safetensors.torch import load_file

    from models.mtmr import MTMRNet, MTMRNetConfig

    path = Path(path)
    card = read_card(path)
    try:
        state = {_strip(name): tensor for name, tensor in load_file(str(path), device="cpu").items()}
    except Exception as exc:
        raise CheckpointError(path, f"weights cannot be read ({exc.__class__.__name__})") from exc
    if weights_hash(state) != card.get("weights_sha256"):
        raise CheckpointError(
            path, "weights do not match the hash in the model card (damaged or edited file)"
        )
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
    return model.to(device).eval(), card


def _strip(name: str) -> str:
    for prefix in _PREFIXES:
        while name.startswith(prefix):
            name = name[len(prefix) :]
    return name
