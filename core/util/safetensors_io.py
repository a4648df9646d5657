"""Safetensors files that carry one JSON document in their metadata: a checkpoint's model card
(``core.model.checkpoints``), a training state's bookkeeping (``core.training.state``).

``write_document_file`` writes to a temporary file beside the target and moves it into place, so a
failure leaves any previous file as it was. ``read_document`` reads the header alone;
``read_document_file`` also reads every tensor and checks them against the hash the document keeps
(``tensors_sha256``). Files are read with safetensors only: nothing is ever unpickled. A missing,
unreadable, foreign, damaged or edited file, or a document of another schema, is refused with
the file's ``DocumentFormat.error`` (a ``SafetensorsFileError``) naming the file and the reason, in the
words of its ``DocumentFormat``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from core.util.atomic import fsync_folder


class SafetensorsFileError(Exception):
    """A file refused: ``path`` and ``reason``, the message naming both. Each kind of file has its own
    subclass (``DocumentFormat.error``)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class DocumentFormat:
    """One kind of file: where its document is, its schema, and the words its refusals use."""

    key: str  # the metadata entry that holds the JSON document
    schema: str  # the document's "schema" value
    hash_key: str  # the document's entry holding ``tensors_sha256`` of the file's tensors
    no_file: str  # "no such checkpoint file"
    no_document: str  # a safetensors file without the document: "no model card in the file: ..."
    not_json: str  # "the model card is not valid JSON"
    schema_name: str  # "model card schema": "<schema_name> 'x', expected 'y'"
    unreadable: str  # the header reads, the tensors do not: "weights cannot be read"
    damaged: str  # the tensors do not match the hash: "... (damaged or edited file)"
    error: type[SafetensorsFileError] = SafetensorsFileError  # what the refusals raise


def tensors_sha256(tensors: Mapping) -> str:
    """A hash of named tensors: names, dtypes, shapes and values, in name order (device-independent)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _mode_for(path: Path, tmp: Path) -> int:
    """The permission bits ``path`` should have: its own if it exists, else those a new file gets here
    (learnt by creating ``tmp``, which the umask applies to; the caller overwrites it)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        pass
    tmp.unlink(missing_ok=True)  # a run killed earlier under the same pid may have left one
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        return stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def write_document_file(path: str | Path, tensors: Mapping, form: DocumentFormat, document: str) -> None:
    """Write ``tensors`` with the JSON text ``document`` atomically: a failure leaves any previous file
    at ``path`` as it was. Its folder is created if needed. The file keeps the permissions of the one
    it replaces, and a new one gets a plain file's (0666 less the umask): safetensors writes 0600, which
    made a shared model unreadable to the other readers of a site once it was calibrated."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        mode = _mode_for(path, tmp)
        save_file(dict(tensors), str(tmp), metadata={form.key: document})
        fd = os.open(tmp, os.O_RDONLY)  # the data on disk before the rename, as core.util.atomic does:
        try:  # else a power cut can leave an empty model or training state in the previous one's place
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)  # last: on Windows a read-only mode would stop the rename's cleanup below
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            with contextlib.suppress(OSError):
                os.chmod(tmp, stat.S_IWRITE | stat.S_IREAD)  # Windows cannot unlink a read-only file
            tmp.unlink(missing_ok=True)
    fsync_folder(path.parent)


def read_document(path: str | Path, form: DocumentFormat) -> dict:
    """The document alone (cheap: reads the header, not the tensors)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise form.error(path, form.no_file)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for malformed headers
        raise form.error(path, f"not a readable safetensors file ({exc.__class__.__name__})") from exc
    if form.key not in metadata:
        raise form.error(path, form.no_document)
    try:
        document = json.loads(metadata[form.key])
    except json.JSONDecodeError as exc:
        raise form.error(path, form.not_json) from exc
    if not isinstance(document, dict) or document.get("schema") != form.schema:
        schema = document.get("schema") if isinstance(document, dict) else None
        raise form.error(path, f"{form.schema_name} {schema!r}, expected {form.schema!r}")
    return document


def read_document_file(
    path: str | Path, form: DocumentFormat, rename: Callable[[str], str] | None = None
) -> tuple[dict, dict]:
    """The document and the tensors (on the CPU, named through ``rename`` if given), the tensors
    checked against the document's hash of them."""
    from safetensors.torch import load_file

    path = Path(path)
    document = read_document(path, form)
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors' own error types for a truncated file
        raise form.error(path, f"{form.unreadable} ({exc.__class__.__name__})") from exc
    if rename is not None:
        tensors = {rename(name): tensor for name, tensor in tensors.items()}
    if tensors_sha256(tensors) != document.get(form.hash_key):
        raise form.error(path, form.damaged)
    return document, tensors
