"""Reading sessions: the markers, labels and view of one series, kept between runs of the app.

One JSON file per series under ``user_dir("sessions")``, named by a hash of the study and series
UIDs so no identifier shows in a file name; written atomically, so a crash or a kill at any moment
leaves the previous session or the new one, never half of one. A file that cannot be read is never
deleted: it is moved aside to ``<name>.corrupt-<UTC time>`` and reported (SessionCorrupt), so the
reader can be told and the file recovered by hand. Sessions hold UIDs only, never a patient's name
or ID.

One writer per series: a window showing a series ``claim``s it (an advisory lock, ``core.util.filelock``,
held until ``release`` or until its process ends, however it ends); a second window or process that
shows the same series cannot claim it, opens it read-only and is refused by ``save`` (``SessionBusy``)
instead of overwriting the first one's markers with its own stale copy. A write without a claim
takes the lock just for that write. Temporary files of writers that died are removed when a store
is opened, never those of a live writer.

File format::

    {
      "schema": "mtmr-reader/session/1",
      "study_uid": "1.2...", "series_uid": "1.2...", "saved_at": "2025-01-31T09:12:45.123+00:00",
      "markers": [<markers.json entries, see core.nodule.markers>],
      "labels": {"<marker id>": <NoduleLabel.to_dict()>},
      "view": {<free-form view state: slice, window, layout...>},
      "follow_up": {<the comparison with a prior study: core.followup.compare.FollowUp.to_dict()>},
      "masks": {"<marker id>": <NoduleMask.to_dict()>},
      "measurements": {"<marker id>": {"mask": <its mask's digest>, "measurement": <...to_dict()>}}
    }

``follow_up`` is kept in the current study's session, so the registration and the comparison are
computed once; ``{}`` when none was made. The app adds ``prior_source``, where the prior was loaded
from, to show it again when the study is reopened (``app.compare_prior``).

A measurement belongs to the mask it was measured on: saved with that mask's digest, it is dropped on
reading when the marker's mask is gone or differs (then it is measured again), never shown stale.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.measure.mask import NoduleMask
from core.measure.measurement import NoduleMeasurement
from core.nodule.labels import NoduleLabel
from core.nodule.markers import MarkerSet, NoduleMarker
from core.util.atomic import atomic_write_text
from core.util.filelock import FileLock
from core.util.paths import user_dir

SCHEMA = "mtmr-reader/session/1"
_SUFFIX = ".json"
SAVE_WAIT_S = 1.0  # an unclaimed save waits this long for another writer's save to end
MAX_DEPTH = 16  # the free-form parts (view, results) are shallow; deeper means a damaged file


@dataclass
class Session:
    study_uid: str
    series_uid: str
    markers: list[NoduleMarker] = field(default_factory=list)
    labels: dict[str, NoduleLabel] = field(default_factory=dict)  # keyed by marker id
    view: dict = field(default_factory=dict)  # JSON-serialisable view state
    saved_at: str = ""  # UTC ISO 8601, set by SessionStore.save
    results: dict[str, dict] = field(default_factory=dict)  # marker id -> the model's last result
    source: str = ""  # where the study was opened from on this workstation (to reopen it)
    masks: dict[str, NoduleMask] = field(default_factory=dict)  # marker id -> its 3D mask (core.measure)
    follow_up: dict = field(default_factory=dict)  # FollowUp.to_dict() against a prior, {} when none
    # marker id -> its mask's measurement (only for a marker in ``masks``: it belongs to that mask)
    measurements: dict[str, NoduleMeasurement] = field(default_factory=dict)

    @property
    def labelled_count(self) -> int:
        """How many of the markers have a label."""
        return sum(1 for m in self.markers if m.id in self.labels)

    def to_dict(self) -> dict:
        masks = {marker_id: mask.to_dict() for marker_id, mask in self.masks.items()}
        return {
            "schema": SCHEMA,
            "study_uid": self.study_uid,
            "series_uid": self.series_uid,
            "saved_at": self.saved_at,
            "markers": [m.to_dict() for m in self.markers],
            "labels": {marker_id: label.to_dict() for marker_id, label in self.labels.items()},
            "view": self.view,
            "results": self.results,
            "source": self.source,
            "masks": masks,
            "measurements": {
                marker_id: {"mask": _digest(masks[marker_id]), "measurement": measured.to_dict()}
                for marker_id, measured in self.measurements.items()
                if marker_id in masks
            },
            "follow_up": self.follow_up,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Session:
        """ValueError (MarkerError and LabelError are ValueErrors) saying what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"not a session record (a JSON {type(data).__name__}, not an object)")
        if data.get("schema") != SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}, expected {SCHEMA!r}")
        for key in ("study_uid", "series_uid"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise ValueError(f"no {key}")
        markers, labels, view = data.get("markers", []), data.get("labels", {}), data.get("view", {})
        if not isinstance(markers, list):
            raise ValueError("markers is not a list")
        if not isinstance(labels, dict):
            raise ValueError("labels is not an object")
        if not isinstance(view, dict):
            raise ValueError("view is not an object")
        if _depth(view) > MAX_DEPTH:
            raise ValueError(f"view is nested more than {MAX_DEPTH} levels deep")
        results, source = data.get("results", {}), data.get("source", "")
        if not isinstance(results, dict) or not all(isinstance(r, dict) for r in results.values()):
            raise ValueError("results is not an object of objects")
        if _depth(results) > MAX_DEPTH:
            raise ValueError(f"results are nested more than {MAX_DEPTH} levels deep")
        if not isinstance(source, str):
            raise ValueError("source is not a string")
        saved_at = data.get("saved_at", "")
        parsed = [NoduleMarker.from_dict(entry) for entry in markers]
        MarkerSet(parsed)  # refuses duplicate ids
        parsed_labels = {}
        for marker_id, label in labels.items():
            if not isinstance(label, Mapping):
                raise ValueError(f"label of marker {marker_id} is not an object")
            try:
                parsed_labels[marker_id] = NoduleLabel.from_dict(label)
            except ValueError as exc:
                raise ValueError(f"label of marker {marker_id}: {exc}") from exc
        masks = data.get("masks", {})
        if not isinstance(masks, dict):
            raise ValueError("masks is not an object")
        parsed_masks = {}
        for marker_id, mask in masks.items():
            try:
                parsed_masks[str(marker_id)] = NoduleMask.from_dict(mask)
            except ValueError as exc:
                raise ValueError(f"mask of marker {marker_id}: {exc}") from exc
        follow_up = data.get("follow_up", {})
        if not isinstance(follow_up, dict):
            raise ValueError("follow_up is not an object")
        if follow_up:
            from core.followup.compare import FollowUp

            try:
                FollowUp.from_dict(follow_up)
            except ValueError as exc:
                raise ValueError(f"follow_up: {exc}") from exc
        measurements = _measurements(data.get("measurements", {}), masks)
        return cls(
            study_uid=data["study_uid"],
            series_uid=data["series_uid"],
            markers=parsed,
            labels=parsed_labels,
            view=view,
            saved_at=saved_at if isinstance(saved_at, str) else "",
            results=results,
            source=source,
            masks=parsed_masks,
            follow_up=follow_up,
            measurements=measurements,
        )


class SessionCorrupt(Exception):
    """A session file that cannot be used. ``aside``: where it was moved (None if it could not be)."""

    def __init__(self, path: Path, reason: str, aside: Path | None) -> None:
        self.path, self.reason, self.aside = Path(path), reason, aside
        where = f"moved aside to {aside.name}" if aside else "it could not be moved aside"
        super().__init__(f"{path}: the saved session cannot be used ({reason}); {where}")


class SessionBusy(Exception):
    """Another window or process has claimed the series: this copy is read-only, nothing was written."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        super().__init__(
            f"{path}: the session is open for editing in another MTMR Reader window or process; "
            "this copy is read-only and was not saved"
        )


@dataclass(frozen=True)
class SessionSummary:
    """One stored session, for a worklist."""

    study_uid: str
    series_uid: str
    marker_count: int
    labelled_count: int
    saved_at: str
    path: Path


class SessionStore:
    """The saved sessions, one file per series, in ``root`` (default: ``user_dir("sessions")``)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else user_dir("sessions")
        self._claims: dict[str, FileLock] = {}  # file name -> the lock this store holds
        self.remove_leftovers()

    def path_for(self, study_uid: str, series_uid: str) -> Path:
        digest = hashlib.sha256(f"{study_uid}\n{series_uid}".encode()).hexdigest()[:32]
        return self.root / f"{digest}{_SUFFIX}"

    def load(self, study_uid: str, series_uid: str) -> Session | None:
        """The saved session, or None when there is none; SessionCorrupt (file moved aside) if unusable."""
        path = self.path_for(study_uid, series_uid)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._corrupt(path, f"cannot be read: {exc.strerror or exc}") from exc
        try:
            session = _parse(data)
        except ValueError as exc:
            raise self._corrupt(path, str(exc)) from exc
        if (session.study_uid, session.series_uid) != (study_uid, series_uid):
            raise self._corrupt(path, "it belongs to another series")
        return session

    def save(self, session: Session) -> Path:
        """Write atomically and set ``session.saved_at`` (UTC); returns the file's path."""
        saved_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")
        document = session.to_dict()
        document["saved_at"] = saved_at
        text = json.dumps(document, indent=2, allow_nan=False) + "\n"  # before any file is touched
        path = self.path_for(session.study_uid, session.series_uid)
        self.root.mkdir(parents=True, exist_ok=True)
        with self._writing(path):
            atomic_write_text(path, text)
        session.saved_at = saved_at
        return path

    def delete(self, study_uid: str, series_uid: str) -> bool:
        """Remove a saved session; False when there was none. ``SessionBusy`` when claimed elsewhere."""
        path = self.path_for(study_uid, series_uid)
        if not path.exists():
            return False
        with self._writing(path):
            try:
                path.unlink()
            except FileNotFoundError:
                return False
        return True

    # -- one writer per series ------------------------------------------------------------------------

    def claim(self, study_uid: str, series_uid: str) -> bool:
        """Become the only writer of this series' session until ``release``; False when another window
        or process is (then show it read-only)."""
        path = self.path_for(study_uid, series_uid)
        if path.name in self._claims:
            return True
        lock = _lock_for(path)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if not lock.acquire():
                return False
        except OSError:  # a folder that cannot be written: not "busy"; saving will say what is wrong
            return True
        self._claims[path.name] = lock
        return True

    def release(self, study_uid: str, series_uid: str) -> None:
        lock = self._claims.pop(self.path_for(study_uid, series_uid).name, None)
        if lock is not None:
            lock.release(remove=True)

    @contextlib.contextmanager
    def _writing(self, path: Path):
        if path.name in self._claims:
            yield
            return
        lock = _lock_for(path)
        if not lock.acquire(SAVE_WAIT_S):
            raise SessionBusy(path)
        try:
            yield
        finally:
            lock.release(remove=True)

    def remove_leftovers(self) -> None:
        """Remove the temporary and lock files of writers that died (``kill -9``, power loss): a file
        goes only when its session's lock can be taken, so a live writer's file stays."""
        if not self.root.is_dir():
            return
        for path in [*self.root.glob(".*.tmp"), *self.root.glob(f".*{_SUFFIX}.lock")]:
            target = self.root / path.name[1:].split(_SUFFIX, 1)[0]
            target = target.with_name(target.name + _SUFFIX)
            if target.name in self._claims:
                continue
            lock = _lock_for(target)
            try:
                if not lock.acquire():
                    continue  # its writer lives
            except OSError:  # a read-only folder: its leftovers stay
                continue
            try:
                if path != lock.path:
                    path.unlink(missing_ok=True)
            except OSError:
                pass
            finally:
                lock.release(remove=True)

    def summaries(self) -> list[SessionSummary]:
        """Every readable stored session, most recently saved first; unreadable files are skipped."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.glob(f"*{_SUFFIX}"):
            try:
                session = _parse(path.read_bytes())
            except (OSError, ValueError):
                continue
            found.append(
                SessionSummary(
                    session.study_uid,
                    session.series_uid,
                    len(session.markers),
                    session.labelled_count,
                    session.saved_at,
                    path,
                )
            )
        return sorted(found, key=lambda s: s.saved_at, reverse=True)

    def _corrupt(self, path: Path, reason: str) -> SessionCorrupt:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        number = 1
        while aside.exists():
            number += 1
            aside = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
        try:
            os.replace(path, aside)
        except OSError:
            return SessionCorrupt(path, reason, None)
        return SessionCorrupt(path, reason, aside)


def _lock_for(path: Path) -> FileLock:
    return FileLock(path.with_name(f".{path.name}.lock"))


def _parse(data: bytes) -> Session:
    try:
        document = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise ValueError("not UTF-8 text") from exc
    except RecursionError as exc:  # a hand-edited or corrupted file: never let it break a worklist
        raise ValueError("nested too deeply to be a session") from exc
    except json.JSONDecodeError as exc:
        if not data.strip():
            raise ValueError("the file is empty") from exc
        raise ValueError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    return Session.from_dict(document)


def _digest(mask: Mapping) -> str:
    """A saved mask's fingerprint: its measurement is its own while this is unchanged."""
    return hashlib.sha256(json.dumps(mask, sort_keys=True, allow_nan=False).encode()).hexdigest()[:32]


def _measurements(saved, masks: Mapping) -> dict[str, NoduleMeasurement]:
    """The saved measurements of the saved masks as they are (ValueError when one is malformed); one
    whose mask is gone or changed is dropped: it is measured again."""
    if not isinstance(saved, dict):
        raise ValueError("measurements is not an object")
    found = {}
    for marker_id, entry in saved.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("mask"), str):
            raise ValueError(f"measurement of marker {marker_id} is not an object with its mask's digest")
        try:
            measured = NoduleMeasurement.from_dict(entry.get("measurement"))
        except ValueError as exc:
            raise ValueError(f"measurement of marker {marker_id}: {exc}") from exc
        mask = masks.get(marker_id)
        if isinstance(mask, Mapping) and entry["mask"] == _digest(mask):
            found[str(marker_id)] = measured
    return found


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a valid JSON number")


def _depth(value) -> int:
    """How deeply lists and objects nest in ``value`` (counted without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, Mapping | list):
            deepest = max(deepest, level)
            stack.extend(
                (child, level + 1) for child in (item.values() if isinstance(item, Mapping) else item)
            )
    return deepest
