"""Model versions: every trained model kept with its card, one of them active, the demo always there.

Under ``user_dir("models")``::

    versions/<id>.safetensors   one checkpoint per version (weights + model card, ``core.model.checkpoints``)
    active.json                 {"schema": ..., "version": "<id>" | "demo", "weights_sha256": ...}

The built-in demo model (``core.model.store.DEMO_MODEL``) is version ``demo``: always listed first,
read-only, never removed, and what ``active()`` falls back to, saying why, when the active version's
file is missing, damaged or not the one that was activated. Versions are written with
``save_checkpoint`` or copied to a temporary file and moved into place, and the active pointer is
written atomically, so a failure, a kill or a full disk leaves the previous state: the active model
is never touched by adding a version. Activating a version loads and verifies it first (card and
weights hash); loading refuses a damaged file, naming it (``DamagedModel``: a ``RegistryError`` and a
``CheckpointError``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.model.checkpoints import CheckpointError, read_card, read_verified
from core.model.store import DEMO_MODEL
from core.util.atomic import atomic_write_text, fsync_folder
from core.util.paths import user_dir

DEMO_ID = "demo"
ACTIVE_SCHEMA = "mtmr-reader/active-model/1"
_ACTIVE = "active.json"
_SUFFIX = ".safetensors"


class RegistryError(Exception):
    """A registry operation refused; the message says which version or file and why."""


class DamagedModel(RegistryError, CheckpointError):
    """A version's file that cannot be used (unreadable, or weights that do not match its card): both a
    ``RegistryError`` and a ``CheckpointError``, naming the file."""

    def __init__(self, path: str | Path, reason: str) -> None:
        CheckpointError.__init__(self, path, reason)


@dataclass(frozen=True)
class Version:
    id: str
    path: Path
    card: dict = field(default_factory=dict, compare=False)
    read_only: bool = False  # the built-in demo
    problem: str = ""  # why the file cannot be used (unreadable card), "" when it can
    note: str = ""  # set by ``active()`` when it fell back to the demo: why

    @property
    def name(self) -> str:
        return str(self.card.get("name", "model"))

    @property
    def label(self) -> str:
        """``name version`` for every place a score is shown."""
        return f"{self.name} {self.card.get('version', '')}".strip()

    @property
    def date(self) -> str:
        return str(self.card.get("date", ""))

    @property
    def parent(self) -> dict | None:
        return self.card.get("parent")

    @property
    def metrics(self) -> dict:
        return self.card.get("metrics") or {}

    @property
    def weights_sha256(self) -> str:
        return str(self.card.get("weights_sha256", ""))


class ModelRegistry:
    """Model versions under ``root`` (default ``user_dir("models")``); ``demo`` is the built-in model."""

    def __init__(self, root: str | Path | None = None, demo: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else user_dir("models")
        self.folder = self.root / "versions"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.demo_path = Path(demo) if demo is not None else DEMO_MODEL

    # -- listing ----------------------------------------------------------------------------------

    def path_for(self, version_id: str) -> Path:
        if version_id == DEMO_ID:
            return self.demo_path
        if not version_id or "/" in version_id or "\\" in version_id or version_id.startswith("."):
            raise RegistryError(f"{version_id!r} is not a version id")
        return self.folder / f"{version_id}{_SUFFIX}"

    def demo(self) -> Version:
        return _version(DEMO_ID, self.demo_path, read_only=True)

    def versions(self) -> list[Version]:
        """The demo first, then every stored version in the order they were added; unreadable ones carry
        ``problem``."""
        paths = []
        for path in self.folder.glob(f"*{_SUFFIX}"):
            with contextlib.suppress(OSError):  # removed meanwhile
                if not path.name.startswith("."):
                    paths.append((path.stat().st_mtime_ns, path.name, path))
        stored = [_version(path.name[: -len(_SUFFIX)], path) for _, _, path in sorted(paths)]
        return [self.demo(), *stored]

    def get(self, version_id: str) -> Version:
        path = self.path_for(version_id)
        if version_id != DEMO_ID and not path.is_file():
            raise RegistryError(f"no model version {version_id!r}")
        return _version(version_id, path, read_only=version_id == DEMO_ID)

    def load(self, version_id: str, device: str = "cpu"):
        """``(model, card)`` of a version, its weights verified against its card (``CheckpointError``
        naming the file when damaged)."""
        from core.model.checkpoints import load_checkpoint

        try:
            return load_checkpoint(self.get(version_id).path, device)
        except CheckpointError as exc:
            raise DamagedModel(exc.path, exc.reason) from exc

    # -- adding and removing ----------------------------------------------------------------------

    def add(self, source, card: dict | None = None) -> Version:
        """Keep a new version: ``source`` is a checkpoint file (verified, then copied) or a model saved
        with ``card`` (its parent, data, metrics...). The version's id is also written into a saved
        card (``version_id``; ``version`` when the card has none). Never changes the active model."""
        version_id = self._new_id()
        target = self.path_for(version_id)
        if isinstance(source, str | os.PathLike):
            source = Path(source)
            self._verify(source)
            blob = source.read_bytes()
            tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            try:
                with open(tmp, "xb") as handle:
                    handle.write(blob)
                    handle.flush()
                    os.fsync(handle.fileno())
                self._verify(tmp)  # the copy, too, before it becomes a version
                os.replace(tmp, target)
            finally:
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)
        else:
            from core.model.checkpoints import save_checkpoint

            if card is None:
                raise RegistryError("a model needs its card (preprocessing, parent, data, metrics)")
            card = dict(card)
            card["version_id"] = version_id
            card.setdefault("version", version_id)
            card.setdefault("date", _now())
            staging = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            try:
                save_checkpoint(staging, source, card)
                with open(staging, "rb+") as handle:  # on the disk before it becomes a version
                    os.fsync(handle.fileno())
                os.replace(staging, target)
            finally:
                with contextlib.suppress(OSError):
                    staging.unlink(missing_ok=True)
        fsync_folder(self.folder)
        return _version(version_id, target)

    def remove(self, version_id: str) -> None:
        """Delete a version; the demo and the active version are refused."""
        if version_id == DEMO_ID:
            raise RegistryError("the built-in demo model cannot be removed")
        path = self.path_for(version_id)
        if not path.is_file():
            raise RegistryError(f"no model version {version_id!r}")
        if self._pointer().get("version") == version_id:
            raise RegistryError(
                f"version {version_id} is the active model: "
                "activate another version or restore the demo first"
            )
        path.unlink()

    # -- the active model -------------------------------------------------------------------------

    def activate(self, version_id: str) -> Version:
        """Make a version the active model, after loading and verifying it (a damaged file is refused,
        naming it, and the active model stays as it was)."""
        version = self.get(version_id)
        card = self._verify(version.path)
        pointer = {
            "schema": ACTIVE_SCHEMA,
            "version": version_id,
            "weights_sha256": card.get("weights_sha256"),
            "activated_at": _now(),
        }
        atomic_write_text(self.root / _ACTIVE, json.dumps(pointer, indent=1, allow_nan=False))
        return replace(version, card=card)

    def restore_demo(self) -> Version:
        """Make the built-in demo model the active one again."""
        return self.activate(DEMO_ID)

    def active_id(self) -> str:
        """The id the pointer names (``demo`` when none), without checking the file."""
        return str(self._pointer().get("version") or DEMO_ID)

    def active(self, verify: bool = True) -> Version:
        """The active version; the demo when none was activated, or, with ``note`` saying why, when the
        active version's file is missing, damaged (``verify``: its weights hash is checked) or another
        file than the one activated."""
        path = self.root / _ACTIVE
        if not path.exists():
            return self.demo()
        try:
            pointer = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(pointer, dict) or pointer.get("schema") != ACTIVE_SCHEMA:
                raise ValueError("not an active-model pointer")
            version_id = str(pointer["version"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return replace(self.demo(), note=f"{path} is damaged ({exc}); using the built-in demo model")
        if version_id == DEMO_ID:
            return self.demo()
        try:
            target = self.path_for(version_id)
        except RegistryError as exc:
            return replace(self.demo(), note=f"{path}: {exc}; using the built-in demo model")
        if not target.is_file():
            return replace(
                self.demo(),
                note=f"the active model {version_id} ({target}) is missing; using the built-in demo",
            )
        try:
            card = self._verify(target) if verify else read_card(target)
        except CheckpointError as exc:
            return replace(self.demo(), note=f"the active model is unusable: {exc}; using the built-in demo")
        expected = pointer.get("weights_sha256")
        if expected and card.get("weights_sha256") != expected:
            return replace(
                self.demo(),
                note=f"{target} is not the model that was activated (its weights differ); "
                "using the built-in demo",
            )
        return Version(version_id, target, card)

    # -- helpers ----------------------------------------------------------------------------------

    def _pointer(self) -> dict:
        try:
            pointer = json.loads((self.root / _ACTIVE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return pointer if isinstance(pointer, dict) else {}

    def _verify(self, path: Path) -> dict:
        """The card of a checkpoint whose weights match it (``DamagedModel`` naming the file)."""
        try:
            card, _ = read_verified(path)
        except CheckpointError as exc:
            raise DamagedModel(exc.path, exc.reason) from exc
        return card

    def _new_id(self) -> str:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        while True:
            version_id = f"v{stamp}-{secrets.token_hex(2)}"
            if not self.path_for(version_id).exists():
                return version_id


def _version(version_id: str, path: Path, read_only: bool = False) -> Version:
    try:
        return Version(version_id, path, read_card(path), read_only=read_only)
    except CheckpointError as exc:
        return Version(version_id, path, {}, read_only=read_only, problem=exc.reason)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
