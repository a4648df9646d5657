"""Secrets of the PACS nodes (bearer tokens, basic-auth passwords), kept by node name.

In the OS keyring when a working one is there (the ``keyring`` package: macOS Keychain, Windows
Credential Locker, Secret Service); otherwise (keyring's fail or null backend, as on a headless Linux)
in ``pacs-secrets.json`` in the user's config folder, created readable by the user alone (0600).
``where()`` says which, for the settings dialog. A secret never appears in a message of this module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from core.pacs.errors import PacsError
from core.util.atomic import atomic_write_bytes
from core.util.paths import user_dir

SERVICE = "mtmr-reader-pacs"
FILE_NAME = "pacs-secrets.json"


def _keyring():
    """The keyring module when its backend can really store secrets, else None."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    backend = keyring.get_keyring()
    names = {type(b).__module__ for b in getattr(backend, "backends", [backend])}
    useless = isinstance(backend, fail.Keyring) or names <= {"keyring.backends.fail", "keyring.backends.null"}
    if useless or getattr(backend, "priority", 1) <= 0:
        return None
    return keyring


def secrets_file() -> Path:
    return user_dir("config") / FILE_NAME


def where() -> str:
    """Where secrets are kept, in words."""
    ring = _keyring()
    if ring is not None:
        return f"the system keyring ({type(ring.get_keyring()).__name__})"
    return f"{secrets_file()} (readable by you only)"


def _read_file() -> dict[str, str]:
    path = secrets_file()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PacsError(f"{path}: cannot be read ({type(exc).__name__})") from exc
    if not isinstance(data, dict):
        raise PacsError(f"{path}: not a JSON object")
    return {str(k): str(v) for k, v in data.items()}


def _write_file(data: dict[str, str]) -> None:
    path = secrets_file()
    atomic_write_bytes(path, json.dumps(data, indent=2, allow_nan=False).encode(), mode=0o600)
    os.chmod(path, 0o600)  # an umask cannot widen 0o600, but a file from an older version might be wider


def store(name: str, secret: str) -> str:
    """Keep ``secret`` for node ``name``; returns where it went (``where()``)."""
    ring = _keyring()
    if ring is not None:
        try:
            ring.set_password(SERVICE, name, secret)
            return where()
        except Exception as exc:  # keyring raises its own KeyringError and backend errors alike
            raise PacsError(f"node {name!r}: the keyring refused the secret ({type(exc).__name__})") from exc
    data = _read_file()
    data[name] = secret
    _write_file(data)
    return where()


def load(name: str) -> str:
    """The secret of node ``name``, "" when none is kept."""
    ring = _keyring()
    if ring is not None:
        try:
            return ring.get_password(SERVICE, name) or ""
        except Exception as exc:
            raise PacsError(f"node {name!r}: the keyring cannot be read ({type(exc).__name__})") from exc
    return _read_file().get(name, "")


def forget(name: str) -> None:
    ring = _keyring()
    if ring is not None:
        import contextlib

        with contextlib.suppress(Exception):
            ring.delete_password(SERVICE, name)
        return
    data = _read_file()
    if data.pop(name, None) is not None:
        _write_file(data)
