"""Model versions: the demo always first and read-only, add / activate / remove / restore, the fall-back
to the demo when the active file is missing or damaged, and saves that never damage the active model
(a failed move, a full disk, SIGKILL while a version is being saved)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core.model.checkpoints import CheckpointError, save_checkpoint
from core.model.patches import PatchConfig
from core.model.registry import DEMO_ID, DamagedModel, ModelRegistry, RegistryError
from core.model.store import DEMO_MODEL
from models.mtmr import MTMRNet, MTMRNetConfig

REPO = Path(__file__).resolve().parents[3]
TINY = MTMRNetConfig(depth=18, width=8, input_size=32)
PATCH = PatchConfig(size=32, max_slices=3)


def tiny_model(seed: int = 0) -> MTMRNet:
    torch.manual_seed(seed)
    return MTMRNet(TINY)


def card(name: str = "tiny", **extra) -> dict:
    return {"name": name, "preprocessing": PATCH.to_dict(), "trained_on": "fake disks", **extra}


def make_registry(tmp_path: Path) -> ModelRegistry:
    """A registry whose built-in demo is a tiny model (the real one is 11 MB and slow to fine-tune)."""
    demo = tmp_path / "resources" / "demo.safetensors"
    if not demo.exists():
        save_checkpoint(demo, tiny_model(0), card("tiny-demo", version="20250101"))
    return ModelRegistry(tmp_path / "models", demo=demo)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return make_registry(tmp_path)


def test_the_default_registry_lists_the_real_demo_in_the_user_models_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MTMR_READER_HOME", str(tmp_path))
    registry = ModelRegistry()
    assert registry.root == tmp_path / "data" / "models"
    [demo] = registry.versions()
    assert demo.id == DEMO_ID and demo.path == DEMO_MODEL and demo.read_only and not demo.problem
    active = registry.active(verify=False)
    assert active.id == DEMO_ID and active.note == "" and active.label.startswith("mtmr-compact")


def test_add_a_model_and_a_file_then_list_them_after_the_demo(registry, tmp_path):
    first = registry.add(tiny_model(1), card(parent={"version_id": DEMO_ID}, metrics={"val": {"auc": 0.8}}))
    assert first.card["version_id"] == first.id == first.card["version"] and first.date
    assert first.parent == {"version_id": DEMO_ID} and first.metrics["val"]["auc"] == 0.8
    save_checkpoint(tmp_path / "elsewhere.safetensors", tiny_model(2), card("copied"))
    second = registry.add(tmp_path / "elsewhere.safetensors")
    assert second.path.read_bytes() == (tmp_path / "elsewhere.safetensors").read_bytes()
    versions = registry.versions()
    assert [v.id for v in versions] == [DEMO_ID, first.id, second.id]
    assert versions[0].read_only and not versions[1].read_only and second.name == "copied"
    model, loaded = registry.load(first.id)
    assert loaded["weights_sha256"] == first.weights_sha256 and isinstance(model, MTMRNet)
    assert registry.active().id == DEMO_ID  # adding never activates


def test_a_damaged_file_is_refused_when_added_activated_or_loaded(registry, tmp_path):
    path = tmp_path / "damaged.safetensors"
    save_checkpoint(path, tiny_model(3), card())
    blob = bytearray(path.read_bytes())
    blob[-100] ^= 0xFF  # in the weights: the header still reads
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match=r"damaged.safetensors.*do not match the hash"):
        registry.add(path)
    assert [v.id for v in registry.versions()] == [DEMO_ID] and not list(registry.folder.iterdir())
    version = registry.add(tiny_model(4), card())
    version.path.write_bytes(bytes(blob))
    assert registry.versions()[1].problem == ""  # listing reads the card only
    with pytest.raises(RegistryError, match=f"{version.id}.safetensors.*hash") as caught:
        registry.activate(version.id)
    assert isinstance(caught.value, CheckpointError) and caught.value.path == version.path
    with pytest.raises(DamagedModel, match=f"{version.id}.safetensors"):
        registry.load(version.id)
    assert registry.active().id == DEMO_ID
    version.path.write_bytes(b"not a checkpoint")
    assert "not a readable safetensors file" in registry.versions()[1].problem


def test_activate_restore_and_remove(registry):
    a = registry.add(tiny_model(1), card("a"))
    b = registry.add(tiny_model(2), card("b"))
    assert registry.activate(a.id).id == a.id and registry.active().id == a.id == registry.active_id()
    assert registry.active().note == ""
    with pytest.raises(RegistryError, match="is the active model"):
        registry.remove(a.id)
    with pytest.raises(RegistryError, match="demo model cannot be removed"):
        registry.remove(DEMO_ID)
    with pytest.raises(RegistryError, match="no model version"):
        registry.remove("v-nothing")
    with pytest.raises(RegistryError, match="not a version id"):
        registry.remove("../escape")
    registry.remove(b.id)
    assert [v.id for v in registry.versions()] == [DEMO_ID, a.id]
    assert registry.restore_demo().id == DEMO_ID and registry.active().id == DEMO_ID
    registry.remove(a.id)  # no longer active
    assert [v.id for v in registry.versions()] == [DEMO_ID]


def test_the_active_model_falls_back_to_the_demo_and_says_why(registry, tmp_path):
    a = registry.add(tiny_model(1), card("a"))
    registry.activate(a.id)
    pointer = registry.root / "active.json"
    original = a.path.read_bytes()

    a.path.write_bytes(original[: len(original) // 2])  # truncated
    active = registry.active()
    assert active.id == DEMO_ID and a.path.name in active.note and "unusable" in active.note
    blob = bytearray(original)
    blob[-50] ^= 0xFF  # flipped weights
    a.path.write_bytes(bytes(blob))
    assert registry.active().id == DEMO_ID and "hash" in registry.active().note
    assert registry.active(verify=False).id == a.id  # the card alone does not show it
    save_checkpoint(a.path, tiny_model(9), card("impostor"))  # another valid model in its place
    assert "not the model that was activated" in registry.active().note
    a.path.unlink()
    assert "missing" in registry.active().note and registry.active().id == DEMO_ID
    pointer.write_text("{ not json")
    assert "active.json is damaged" in registry.active().note
    pointer.write_text(json.dumps({"schema": "mtmr-reader/active-model/1", "version": "../../x"}))
    assert "not a version id" in registry.active().note


# -- failures never damage the active model ------------------------------------------------------


@pytest.mark.parametrize("failing", ["replace", "fsync", "save_file"])
def test_a_failed_save_never_touches_the_active_model(registry, tmp_path, monkeypatch, failing):
    a = registry.add(tiny_model(1), card("a"))
    registry.activate(a.id)
    before = {p.name: p.read_bytes() for p in registry.root.rglob("*") if p.is_file()}
    save_checkpoint(tmp_path / "other.safetensors", tiny_model(2), card("other"))
    if failing == "save_file":  # the disk fills while the weights are written
        import safetensors.torch

        monkeypatch.setattr(safetensors.torch, "save_file", enospc)
    else:
        monkeypatch.setattr(os, failing, enospc)
    with pytest.raises(OSError, match="No space"):
        registry.add(tiny_model(5), card("new"))
    if failing != "save_file":
        with pytest.raises(OSError, match="No space"):
            registry.add(tmp_path / "other.safetensors")
        with pytest.raises(OSError, match="No space"):
            registry.restore_demo()  # the pointer's own write fails: still the old pointer
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in registry.root.rglob("*") if p.is_file()}
    assert after == before  # no new version, no temporary file, the same active pointer
    assert registry.active().id == a.id and registry.active().note == ""


WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
import torch
from core.model.registry import ModelRegistry
from models.mtmr import MTMRNet, MTMRNetConfig

registry = ModelRegistry(sys.argv[1] + "/models", demo=sys.argv[1] + "/resources/demo.safetensors")
card = {"name": "looping", "preprocessing": {"mode": "fixed-fov", "size": 32, "fov_mm": 48.0,
        "paper_scale": 1.25, "max_slices": 3, "hu_range": [-1100.0, 500.0], "channels": 1}}
n = 0
while True:
    torch.manual_seed(n)
    version = registry.add(MTMRNet(MTMRNetConfig(depth=18, width=8, input_size=32)), card)
    if n % 3 == 2:
        registry.activate(version.id)
    print(n, flush=True)
    n += 1
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_versions_and_the_active_model_survive_sigkill_while_saving(registry, tmp_path):
    """A process adding versions (and now and then activating one) in a loop, killed at random moments:
    the active model always loads, and every version on disk is whole."""
    first = registry.add(tiny_model(1), card("first"))
    first_bytes = first.path.read_bytes()
    registry.activate(first.id)
    rng = random.Random(7)
    for _ in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(REPO)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert writer.stdout.readline(), writer.stderr.read()  # one version saved
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=30)
            writer.stdout.close()
            writer.stderr.close()
        active = registry.active()  # verifies the weights hash
        assert active.note == "" and active.id in {v.id for v in registry.versions()}
        registry.load(active.id)
        for version in registry.versions()[1:]:
            assert version.problem == ""
            registry.load(version.id)  # whole: the hash matches
    assert first.path.read_bytes() == first_bytes
    left = [p.name for p in registry.folder.iterdir() if not p.name.endswith(".safetensors")]
    # Only hidden temporary files may be left by a kill: ours (".<name>.<pid>.<token>.tmp") or the
    # safetensors writer's own (".tmpXXXXXX", from the Rust tempfile crate); never a partial version.
    assert all(name.endswith(".tmp") or name.startswith(".tmp") for name in left), left
    assert len(registry.versions()) >= 5
