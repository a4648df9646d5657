"""The labelled-nodule library: every nodule the reader confirmed, kept so the model can learn from it.

One file per entry under ``user_dir("labels")/entries``, named by a hash of the series UID and the
marker id (so re-adding a marker replaces its entry, and no identifier shows in a file name). The
file is an ``.npz`` (loaded with ``allow_pickle=False``) holding:

* ``record``: one JSON document: the ``LabelledNodule`` (label, marker centre and diameter, study and
  series UIDs), the date added and last updated, the preprocessing (``PatchConfig``) the patches were
  cut with and its key, and a hash of the patches;
* ``patches`` (float16, slices x channels x size x size), ``nodule_index`` and ``variant``: the model
  input cut by ``core.training.labelled.dataset_from_labels``, so fine-tuning never needs the study;
* ``thumbnail``: the central patch as a small grey PNG (bytes), for the library view.

Nothing else about the study is kept: no patient name, ID or birth date (UIDs only, by design).

Every write goes to a temporary file moved into place (``core.util.atomic``), so a failure, a kill or a
full disk leaves the previous entry or the new one, never half of one. An import stages every new
file first and commits them under a journal (``import.journal.json``): a failure in the middle rolls
back at once, and a power cut in the middle is rolled back the next time the library is opened
(``Library.recover``, here; export and import are ``core.reading.library_transfer``'s). There is no
index to go stale: the entry files are the library.

Every write (add, remove, import) holds the library's lock (``library.lock``, ``core.util.filelock``) for
its whole length, so writers in several processes take turns: a second one waits up to
``BUSY_WAIT_S`` and is then refused with "the library is busy". Opening a library rolls back an import
and removes temporary files only when it can take that lock, that is, only when their writer is dead,
never under a live import.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core.model.patches import PatchConfig
from core.nodule.labels import LabelError, LabelledNodule
from core.training.data import NoduleDataset
from core.util.atomic import atomic_write_bytes, fsync_folder
from core.util.filelock import FileLock
from core.util.paths import user_dir
from core.util.png import encode_png
from core.volume import CTVolume

ENTRY_SCHEMA = "mtmr-reader/library-entry/1"
ENTRY_SUFFIX = ".npz"
IMPORT_JOURNAL = "import.journal.json"  # an import's commit in progress (core.reading.library_transfer)
_ARRAYS = ("record", "patches", "nodule_index", "variant", "thumbnail")
_LOCK = "library.lock"
BUSY_WAIT_S = 10.0  # how long a writer waits for another process's import before "busy"


class LibraryError(Exception):
    """A library operation refused or failed; the message names the file (if any) and the reason."""

    def __init__(self, reason: str, path: str | Path | None = None) -> None:
        self.path, self.reason = (None if path is None else Path(path)), reason
        super().__init__(f"{path}: {reason}" if path is not None else reason)


def preprocessing_key(patch: PatchConfig) -> str:
    """A short digest of everything that shapes the patches: equal keys, interchangeable patches."""
    text = json.dumps(patch.to_dict(), sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def entry_id(series_uid: str, marker_id: str) -> str:
    """The entry of a marker on a series: the de-duplication key, hashed (no UID in file names)."""
    return hashlib.sha256(f"{series_uid}\n{marker_id}".encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Entry:
    id: str
    nodule: LabelledNodule
    added_at: str  # ISO 8601, UTC: when the marker first entered the library
    updated_at: str  # when its label or patches were last replaced
    preprocessing: dict  # PatchConfig.to_dict() the patches were cut with
    preprocessing_key: str
    slices: int
    patches_sha256: str
    path: Path

    @property
    def label(self):
        return self.nodule.label

    @property
    def source(self) -> str:
        return self.nodule.label.source

    def thumbnail_png(self) -> bytes:
        """The central patch as a grey PNG (read from the entry file)."""
        with _open_npz(self.path) as data:
            return data["thumbnail"].tobytes()


class Library:
    """The reader's labelled nodules under ``root`` (default ``user_dir("labels")``)."""

    def __init__(self, root: str | Path | None = None, busy_wait_s: float = BUSY_WAIT_S) -> None:
        self.root = Path(root) if root is not None else user_dir("labels")
        self.folder = self.root / "entries"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.busy_wait_s = busy_wait_s
        self._threads = threading.RLock()  # the threads of this process, one writer at a time
        self._lock: FileLock | None = None  # held while this object writes
        self._depth = 0
        self.recover()

    # -- reading ----------------------------------------------------------------------------------

    def path_for(self, entry_id_: str) -> Path:
        return self.folder / f"{entry_id_}{ENTRY_SUFFIX}"

    def scan(self) -> tuple[list[Entry], list[LibraryError]]:
        """Every readable entry (oldest first) and a ``LibraryError`` for each unreadable file."""
        entries, problems = [], []
        for path in sorted(self.folder.glob(f"*{ENTRY_SUFFIX}")):
            if path.name.startswith("."):
                continue
            try:
                entries.append(read_entry(path, path.read_bytes()))
            except LibraryError as exc:
                problems.append(exc)
            except OSError as exc:
                problems.append(LibraryError(f"cannot be read ({exc.strerror or exc})", path))
        entries.sort(key=lambda e: (e.added_at, e.id))
        return entries, problems

    def entries(self) -> list[Entry]:
        """The readable entries, oldest first (``scan`` also reports the unreadable ones)."""
        return self.scan()[0]

    def get(self, entry_id_: str) -> Entry | None:
        path = self.path_for(entry_id_)
        if not path.is_file():
            return None
        return read_entry(path, path.read_bytes())

    def __len__(self) -> int:
        return len(self.entries())

    # -- writing ----------------------------------------------------------------------------------

    def add(self, volume: CTVolume, nodule: LabelledNodule, patch: PatchConfig, variants: int = 0) -> Entry:
        """Cut ``nodule``'s patches from ``volume`` with ``patch`` and keep them with its label.

        A marker already in the library (same series UID and marker id) is replaced in one atomic
        write; its date added is kept. Raises ``LibraryError`` (nothing written) when the nodule has
        no rating at all, no series UID, or lies outside the volume.
        """
        from core.training.labelled import dataset_from_labels

        metadata = volume.metadata
        nodule = replace(
            nodule,
            series_uid=nodule.series_uid or metadata.series_uid,
            study_uid=nodule.study_uid or metadata.study_uid,
        )
        if not nodule.series_uid:
            raise LibraryError(
                f"marker {nodule.marker_id}: no series UID, so it cannot be kept or de-duplicated"
            )
        if nodule.label.malignancy is None and not nodule.label.attributes:
            raise LibraryError(f"marker {nodule.marker_id}: no malignancy or attribute rating to learn from")
        try:
            data = dataset_from_labels(volume, [nodule], patch, variants=variants)
        except ValueError as exc:
            raise LibraryError(str(exc)) from exc
        ident = entry_id(nodule.series_uid, nodule.marker_id)
        path = self.path_for(ident)
        now = utc_timestamp()
        added_at = now
        with self.writing():
            with contextlib.suppress(LibraryError, OSError):  # a damaged old entry is simply replaced
                if path.is_file():
                    added_at = read_entry(path, path.read_bytes()).added_at
            blob = _entry_bytes(ident, nodule, data, patch, added_at, now)
            atomic_write_bytes(path, blob)
        return read_entry(path, blob)

    def remove(self, entry_id_: str) -> None:
        """Delete one entry (a single unlink: it is gone or it is still there)."""
        path = self.path_for(entry_id_)
        with self.writing():
            if not path.is_file():
                raise LibraryError(f"no library entry {entry_id_}")
            path.unlink()

    @contextlib.contextmanager
    def writing(self):
        """Hold the library's lock (re-entrant in this object): ``LibraryError`` when another process
        kept it for ``busy_wait_s`` seconds."""
        with self._threads:
            if self._depth == 0:
                lock = FileLock(self.root / _LOCK)
                if not lock.acquire(self.busy_wait_s):
                    raise LibraryError(
                        "the library is busy: another MTMR Reader process is writing to it (an import?); "
                        "try again when it has finished",
                        self.root,
                    )
                self._lock = lock
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._lock.release(remove=True)
                    self._lock = None

    # -- training data ----------------------------------------------------------------------------

    def dataset(
        self, patch: PatchConfig, entries: Sequence[Entry] | None = None, skip_other: bool = False
    ) -> NoduleDataset:
        """The entries (all by default) as one ``NoduleDataset`` for a model with preprocessing ``patch``.

        ``patient_ids`` hold each entry's study UID (its series UID when the study's is unknown), so
        validation can be held out by study. Entries cut with another preprocessing cannot be re-cut
        without their studies: they are refused with ``LibraryError`` (or left out with
        ``skip_other``). A damaged entry file is refused, naming it.
        """
        from core.training.labelled import attribute_targets, label_value

        entries = self.entries() if entries is None else list(entries)
        key = preprocessing_key(patch)
        other = [e for e in entries if e.preprocessing_key != key]
        if other and not skip_other:
            first = other[0].preprocessing
            raise LibraryError(
                f"{len(other)} of {len(entries)} library entries were cut with another preprocessing "
                f"({_describe(first)}) than this model's ({_describe(patch.to_dict())}); patches cannot be "
                "re-cut without the original studies: re-add those nodules from their studies, or use a "
                "model with that preprocessing"
            )
        entries = [e for e in entries if e.preprocessing_key == key]
        shape = (0, patch.channels, patch.size, patch.size)
        patches, index, variant = [np.zeros(shape, np.float16)], [], []
        for n, entry in enumerate(entries):
            with _open_npz(entry.path) as data:
                stack = data["patches"]
                variant.append(data["variant"])
            if _hash(stack) != entry.patches_sha256:
                raise LibraryError("patches do not match the hash in the entry (damaged file)", entry.path)
            patches.append(stack.astype(np.float16, copy=False))
            index.append(np.full(len(stack), n, np.int32))
        nodules = [e.nodule for e in entries]
        groups = [n.study_uid or n.series_uid for n in nodules]
        return NoduleDataset(
            patches=np.concatenate(patches),
            nodule_index=np.concatenate(index) if index else np.zeros(0, np.int32),
            variant=np.concatenate(variant).astype(np.int16) if variant else np.zeros(0, np.int16),
            labels=np.array([label_value(n) for n in nodules], np.int8),
            attributes=np.array([attribute_targets(n) for n in nodules], np.float32).reshape(len(nodules), 8),
            diameters=np.array([n.diameter_mm for n in nodules], np.float32),
            nodule_ids=np.array([f"{n.series_uid}/{n.marker_id}" for n in nodules], dtype=str),
            patient_ids=np.array(groups, dtype=str),
        )

    # -- recovery ---------------------------------------------------------------------------------

    @property
    def journal_path(self) -> Path:
        """The journal of an import being committed (``core.reading.library_transfer``)."""
        return self.root / IMPORT_JOURNAL

    def staging_path(self, entry_id_: str, token: str) -> Path:
        """Where the import with ``token`` writes an entry before its commit moves it in."""
        return self.folder / f".{entry_id_}.{token}.import.tmp"

    def backup_path(self, entry_id_: str, token: str) -> Path:
        """Where the import with ``token`` keeps the entry it replaces until its commit is complete."""
        return self.folder / f".{entry_id_}.{token}.backup"

    def recover(self) -> None:
        """Roll back an import that stopped half-way (its journal is still there) and remove the
        temporary files of dead writers; a live writer's import and files are left alone."""
        with self._threads:
            if self._depth:  # this object's own import failed: it holds the lock already
                self._roll_back()
                return
            lock = FileLock(self.root / _LOCK)
            try:
                if not lock.acquire():
                    return  # another process is writing: its journal is live, not a leftover
            except OSError:  # a library that cannot be written here (read-only): nothing to undo
                return
            try:
                self._roll_back()
                self._remove_leftovers()
            finally:
                lock.release(remove=True)

    def _roll_back(self) -> None:
        """Undo the import whose journal is still there; the caller holds the library's lock, so the
        import's writer is this process or dead."""
        journal_path = self.journal_path
        if not journal_path.is_file():
            return
        try:
            journal = json.loads(journal_path.read_text(encoding="utf-8"))
            token, added, replaced = journal["token"], journal["added"], journal["replaced"]
        except (OSError, ValueError, KeyError, TypeError):
            journal_path.unlink(missing_ok=True)  # written atomically: unreadable means never complete
            return
        for ident in added:
            self.path_for(ident).unlink(missing_ok=True)
        for ident in replaced:
            backup = self.backup_path(ident, token)
            if backup.is_file():
                os.replace(backup, self.path_for(ident))
        for tmp in self.folder.glob(f".*.{token}.import.tmp"):
            tmp.unlink(missing_ok=True)
        fsync_folder(self.folder)
        journal_path.unlink()

    def _remove_leftovers(self) -> None:
        """Remove the temporary files of writers that died (``kill -9``, power loss): staged imports, the
        backups of a committed one, half-written entries. The caller holds the library's lock, so no live
        writer owns any of them; with a journal still there (a roll-back that failed) nothing is removed."""
        if self.journal_path.exists():
            return
        for folder, pattern in ((self.folder, ".*.tmp"), (self.folder, ".*.backup"), (self.root, ".*.tmp")):
            for path in folder.glob(pattern):
                with contextlib.suppress(OSError):
                    path.unlink()


# -- entry files -------------------------------------------------------------------------------------


def _entry_bytes(
    ident: str,
    nodule: LabelledNodule,
    data: NoduleDataset,
    patch: PatchConfig,
    added_at: str,
    updated_at: str,
) -> bytes:
    patches = np.ascontiguousarray(data.patches, dtype=np.float16)
    record = {
        "schema": ENTRY_SCHEMA,
        "id": ident,
        "nodule": nodule.to_dict(),
        "added_at": added_at,
        "updated_at": updated_at,
        "preprocessing": patch.to_dict(),
        "preprocessing_key": preprocessing_key(patch),
        "slices": len(patches),
        "patches_sha256": _hash(patches),
    }
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        record=np.array(json.dumps(record, sort_keys=True, allow_nan=False)),
        patches=patches,
        nodule_index=np.asarray(data.nodule_index, np.int32),
        variant=np.asarray(data.variant, np.int16),
        thumbnail=np.frombuffer(_thumbnail(patches, data.variant), np.uint8),
    )
    return buffer.getvalue()


def _thumbnail(patches: np.ndarray, variant: np.ndarray) -> bytes:
    """The central clean slice, first channel, -1..1 mapped to 0..255."""
    clean = np.nonzero(np.asarray(variant) == 0)[0]
    rows = clean if len(clean) else np.arange(len(patches))
    image = patches[rows[len(rows) // 2], 0].astype(np.float32)
    return encode_png(np.clip((image + 1.0) * 127.5, 0, 255).astype(np.uint8))


def read_entry(path: Path, blob: bytes) -> Entry:
    """Parse and check one entry file's bytes; ``LibraryError`` naming ``path`` if anything is off."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            missing = [name for name in _ARRAYS if name not in data.files]
            if missing:
                raise LibraryError(f"not a library entry: {', '.join(missing)} missing", path)
            record = json.loads(str(data["record"]))
            patches = data["patches"]
            index, variant = data["nodule_index"], data["variant"]
    except LibraryError:
        raise
    except Exception as exc:  # numpy / zipfile raise many types for a damaged file
        raise LibraryError(f"not a readable library entry ({exc.__class__.__name__}: {exc})", path) from exc
    if not isinstance(record, dict) or record.get("schema") != ENTRY_SCHEMA:
        schema = record.get("schema") if isinstance(record, dict) else None
        raise LibraryError(f"entry schema {schema!r}, expected {ENTRY_SCHEMA!r}", path)
    try:
        nodule = LabelledNodule.from_dict(record["nodule"])
        patch = PatchConfig.from_dict(record["preprocessing"])
        entry = Entry(
            id=str(record["id"]),
            nodule=nodule,
            added_at=str(record["added_at"]),
            updated_at=str(record["updated_at"]),
            preprocessing=patch.to_dict(),
            preprocessing_key=str(record["preprocessing_key"]),
            slices=int(record["slices"]),
            patches_sha256=str(record["patches_sha256"]),
            path=path,
        )
    except (LabelError, KeyError, TypeError, ValueError) as exc:
        raise LibraryError(f"incomplete library entry ({exc.__class__.__name__}: {exc})", path) from exc
    if entry.id != entry_id(nodule.series_uid, nodule.marker_id):
        raise LibraryError("the entry id does not match its series and marker", path)
    if entry.preprocessing_key != preprocessing_key(patch):
        raise LibraryError("the preprocessing key does not match the preprocessing", path)
    expected = (entry.slices, patch.channels, patch.size, patch.size)
    if patches.shape != expected or patches.dtype != np.float16:
        raise LibraryError(f"patches {patches.dtype} {patches.shape}, expected float16 {expected}", path)
    if index.shape != (entry.slices,) or variant.shape != (entry.slices,):
        raise LibraryError("the patch index does not match the patches", path)
    if _hash(patches) != entry.patches_sha256:
        raise LibraryError("patches do not match the hash in the entry (damaged file)", path)
    return entry


@contextlib.contextmanager
def _open_npz(path: Path):
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise LibraryError(f"not a readable library entry ({exc.__class__.__name__})", path) from exc
    try:
        yield data
    except KeyError as exc:
        raise LibraryError(f"not a library entry ({exc})", path) from exc
    finally:
        data.close()


def _describe(preprocessing: dict) -> str:
    mode, size, slices = (preprocessing.get(k) for k in ("mode", "size", "max_slices"))
    return f"{mode}, {size} px, {slices} slices"


def _hash(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype}|{array.shape}|".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def utc_timestamp() -> str:
    """Now, in UTC, as ISO 8601 to the microsecond (an entry's dates, an export's)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")
