"""Moving the labelled-nodule library between workstations: export to one zip file, and import.

``export(library, path)`` and ``import_(library, path)`` take a ``core.reading.library.Library``. An
export is a zip of the entry files with a ``manifest.json`` (schema ``EXPORT_SCHEMA``, each entry's id,
file and SHA-256), written atomically. An import checks every record before anything is written, stages
every new file, then commits them under the library's journal (``Library.journal_path``): a failure in
the middle rolls back at once, and a power cut in the middle is rolled back (``Library.recover``) the
next time the library is opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from core.reading.library import ENTRY_SUFFIX, Entry, Library, LibraryError, read_entry, utc_timestamp
from core.util.atomic import atomic_write_bytes, atomic_write_text, fsync_folder

EXPORT_SCHEMA = "mtmr-reader/library-export/1"


class ImportResult(NamedTuple):
    added: int
    replaced: int
    skipped: int


def export(library: Library, path: str | Path, entries: Sequence[Entry] | None = None) -> int:
    """Write the entries (all by default) into one zip file, atomically. Returns how many."""
    path = Path(path)
    entries = library.entries() if entries is None else list(entries)
    files = []
    for entry in entries:
        blob = entry.path.read_bytes()
        files.append((entry.id, blob))
    manifest = {
        "schema": EXPORT_SCHEMA,
        "exported_at": utc_timestamp(),
        "entries": [
            {
                "id": ident,
                "file": f"entries/{ident}{ENTRY_SUFFIX}",
                "sha256": hashlib.sha256(blob).hexdigest(),
            }
            for ident, blob in files
        ],
    }
    buffer = io.BytesIO()  # entries are small (tens of kB): the zip is built in memory, written once
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False))
        for ident, blob in files:
            archive.writestr(f"entries/{ident}{ENTRY_SUFFIX}", blob)
    atomic_write_bytes(path, buffer.getvalue())
    return len(files)


def import_(library: Library, path: str | Path) -> ImportResult:
    """Merge an exported library. Every record is checked before anything is written: a bad file
    is refused with ``LibraryError`` naming it and the reason, and the library is left as it was.

    An entry already here is replaced when the imported one was updated later and differs;
    an identical or older one is skipped. A failure while writing rolls everything back.
    """
    path = Path(path)
    incoming = _read_export(path)
    with library.writing():  # the plan and its commit see the same library: no other writer between
        return _merge(library, incoming)


def _merge(library: Library, incoming: list[tuple[str, bytes, Entry]]) -> ImportResult:
    plan: list[tuple[str, bytes, bool]] = []  # (id, file bytes, replaces an entry)
    skipped = 0
    for ident, blob, entry in incoming:
        target = library.path_for(ident)
        current = None
        if target.is_file():
            with contextlib.suppress(LibraryError, OSError):
                current = read_entry(target, target.read_bytes())
            if current is not None and (_same(current, entry) or (current.updated_at > entry.updated_at)):
                skipped += 1
                continue
        plan.append((ident, blob, target.exists()))
    _commit(library, plan)
    added = sum(1 for _, _, replaces in plan if not replaces)
    return ImportResult(added, len(plan) - added, skipped)


def _commit(library: Library, plan: list[tuple[str, bytes, bool]]) -> None:
    """Write ``plan`` all or nothing: stage every file, then move them in under a journal."""
    if not plan:
        return
    token = secrets.token_hex(4)
    staged: list[Path] = []
    try:
        for ident, blob, _ in plan:
            tmp = library.staging_path(ident, token)
            staged.append(tmp)
            _write_synced(tmp, blob)
        journal = {
            "token": token,
            "added": [ident for ident, _, replaces in plan if not replaces],
            "replaced": [ident for ident, _, replaces in plan if replaces],
        }
        atomic_write_text(library.journal_path, json.dumps(journal, allow_nan=False))
    except BaseException:
        for tmp in staged:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        raise
    try:
        for (ident, _, replaces), tmp in zip(plan, staged, strict=True):
            final = library.path_for(ident)
            if replaces:
                os.replace(final, library.backup_path(ident, token))
            os.replace(tmp, final)
    except BaseException:
        library.recover()
        raise
    fsync_folder(library.folder)
    library.journal_path.unlink()
    for ident, _, replaces in plan:
        if replaces:
            with contextlib.suppress(OSError):
                library.backup_path(ident, token).unlink()


def _read_export(path: Path) -> list[tuple[str, bytes, Entry]]:
    """Every entry of an export file, each checked; ``LibraryError`` naming the file otherwise."""
    if not path.is_file():
        raise LibraryError("no such library export file", path)
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                manifest = json.loads(archive.read("manifest.json"))
            except KeyError:
                raise LibraryError("no manifest.json: not an MTMR Reader library export", path) from None
            if not isinstance(manifest, dict) or manifest.get("schema") != EXPORT_SCHEMA:
                schema = manifest.get("schema") if isinstance(manifest, dict) else None
                raise LibraryError(f"export schema {schema!r}, expected {EXPORT_SCHEMA!r}", path)
            listed = manifest.get("entries")
            if not isinstance(listed, list):
                raise LibraryError("the manifest lists no entries", path)
            out, seen = [], set()
            for item in listed:
                try:
                    ident, name, digest = str(item["id"]), str(item["file"]), str(item["sha256"])
                    blob = archive.read(name)
                except (KeyError, TypeError) as exc:
                    raise LibraryError(
                        f"manifest entry {item!r} is missing or incomplete ({exc})", path
                    ) from exc
                if hashlib.sha256(blob).hexdigest() != digest:
                    raise LibraryError(f"{name} does not match its hash in the manifest (damaged file)", path)
                try:
                    entry = read_entry(Path(name), blob)
                except LibraryError as exc:
                    raise LibraryError(f"{name}: {exc.reason}", path) from exc
                if entry.id != ident or ident in seen:
                    raise LibraryError(f"{name}: entry id {ident} is wrong or listed twice", path)
                seen.add(ident)
                out.append((ident, blob, entry))
    except LibraryError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, RuntimeError) as exc:
        raise LibraryError(f"not a readable library export ({exc.__class__.__name__}: {exc})", path) from exc
    return out


def _same(a: Entry, b: Entry) -> bool:
    return (
        a.nodule == b.nodule
        and a.patches_sha256 == b.patches_sha256
        and a.preprocessing_key == b.preprocessing_key
    )


def _write_synced(path: Path, blob: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    with os.fdopen(fd, "wb") as handle:
        handle.write(blob)
        handle.flush()
        os.fsync(handle.fileno())
