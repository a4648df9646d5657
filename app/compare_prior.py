"""Compare with prior (P): the follow-up reading of the shown study against the same patient's prior.

Two background jobs, each with the status bar's progress and Cancel (``app.window_jobs``): find the
priors (``core.followup.priors.find_priors`` over the saved sessions and the folder the study was opened
from, then the folder above it when the first holds none and the one above holds at most
``PARENT_FILES`` files), and then the PACS nodes of the settings (``core.pacs.nodes``, each within its
timeout; one that cannot be asked is a note, the local studies still count); load the prior (one found
only on a PACS is first retrieved, its CT series, into the study cache) and ``compare`` it with the
shown study (the registration and the reader's pairings saved with this study's session against the same
prior are used, not computed again). A prior whose patient identity differs in any field is compared
only once the reader confirms it. The reading is kept with the current study's session
(``Session.follow_up``), the prior is shown beside the current one (``app.compare_view.PriorView``) and
the nodule table gains its columns. Nothing of the window changes until the comparison is done: a
cancelled or failed job leaves it as it was.

The prior's markers (and masks) are those of its saved session; a prior without one is read with the
``markers.json`` saved beside it (the phantom, ``predict`` and ``measure`` write one), else without
markers (every current nodule is then new).

Reopening a study whose session holds a reading shows its prior again, without P: once the study is
shown, the prior is loaded in the background (progress and Cancel, as P) from where it was compared
(``prior_source``, kept in the reading's record), with the saved reading as it is: nothing is
registered or compared again. A prior no longer there is said, and the reading's columns stay.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from itertools import islice
from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from core.dicom.catalogue import catalogue, iter_files
from core.dicom.errors import StudyLoadError
from core.dicom.loader_process import run_isolated
from core.dicom.series import load_study_ct
from core.followup.compare import FollowUp, compare, saved_reading
from core.followup.pacs_priors import PacsSource
from core.followup.priors import CatalogueSource, PatientIdentity, SessionSource, find_priors
from core.imaging.volume_files import is_volume_file
from core.nodule.markers import MarkerError, NoduleMarker, read_markers
from core.pacs import client
from core.pacs.errors import PacsError
from core.pacs.nodes import load_settings, resolve
from core.reading.session import SessionCorrupt
from core.reading.session_key import session_key
from core.util.cancellation import check
from core.volume import CTVolume

PRIOR_SOURCE = "prior_source"  # the reading's record: where its prior was loaded from
PRIOR_ADDED = "prior_markers_added"  # the reading's record: markers the reader added to the prior
PARENT_FILES = 20_000  # the folder above the study's is searched only up to this many files


def _load_study(location: str, study_uid: str, cancelled=None) -> CTVolume:
    """The prior's largest CT series, loaded in the loader's own process (core.dicom.loader_process):
    it loads while the reader already works on the current study."""
    return run_isolated(load_study_ct, location, study_uid, cancelled=cancelled)


class PriorComparison:
    """A ``MainWindow`` mixin: ``compare_with_prior`` and the reading it keeps (``follow_up``)."""

    def compare_with_prior(self) -> None:
        volume = self.volume
        if volume is None or self._showing is not None:
            self.statusBar().showMessage("Open a study first: its prior is then found and compared", 8000)
            return
        meta = volume.metadata
        patient = PatientIdentity(meta.patient_id, meta.patient_name, meta.patient_birth_date)
        source, sessions = self.source, self.sessions

        def find(progress, cancelled):
            sessions_source = SessionSource.from_store(sessions)
            local = [sessions_source]
            for k, folder in enumerate(_folders(source)):
                if k and sum(1 for _ in islice(iter_files(folder), PARENT_FILES + 1)) > PARENT_FILES:
                    break  # a folder above of more than a patient's studies: not read through
                listed = catalogue(folder, progress=lambda _: check(cancelled))
                local = [CatalogueSource(listed), sessions_source]
                if find_priors(patient, meta.study_uid, meta.study_date, local).candidates:
                    break
            check(cancelled)
            pacs, notes = _pacs_sources()
            found = find_priors(patient, meta.study_uid, meta.study_date, local + pacs)
            return replace(found, problems=tuple(dict.fromkeys(found.problems + notes)))

        self.statusBar().showMessage("Looking for this patient's prior studies...")
        self._run(guarded(find), partial(self._prior_found, volume))

    def _prior_found(self, volume: CTVolume, priors) -> None:
        if self._failed(volume, priors):
            return
        date = volume.metadata.study_date
        earlier = [c for c in priors.candidates if c.study.date and date and c.study.date < date]
        candidate = priors.default or (earlier[0] if earlier else None)
        if candidate is None:
            notes = "; ".join(priors.problems)
            self._idle(
                "No earlier study of this patient found in the folder it was opened from, the one above "
                "it, the saved sessions or the PACS nodes of the settings" + (f" ({notes})" if notes else "")
            )
            return
        if candidate.needs_confirmation and not self._confirm_patient(candidate):
            self._idle("Not compared: the prior's patient identity was not confirmed")
            return
        markers = list(self.markers.markers)
        masks = self.review.segmentation.current()
        saved = dict(self.follow_up)
        study = candidate.study

        def job(progress, cancelled):
            location = study.location or _retrieve(study, progress, cancelled)
            prior = _load_study(location, study.study_uid, cancelled=cancelled)
            prior_markers, prior_masks = _prior_markers(self.sessions, prior, location)
            if saved_reading(saved, prior, (), ()) is not None:  # a reading of this prior: its additions
                prior_markers = with_added(prior_markers, saved)
            found = saved_reading(saved, prior, prior_markers, markers)
            registration, overrides = found if found else (None, None)
            reading = compare(
                prior, volume, prior_markers, markers, prior_masks=prior_masks, current_masks=masks,
                registration=registration, overrides=overrides, progress=progress, cancelled=cancelled,
            )  # fmt: skip
            return PriorStudy(prior, location, prior_markers, prior_masks), reading

        where = f" (retrieving it from {study.node.label} first)" if study.node is not None else ""
        self.statusBar().showMessage(f"Comparing with the prior of {_date(study.date)}{where}...")
        added = list(saved.get(PRIOR_ADDED, []))
        self._run(guarded(job), partial(self._show_comparison, volume, priors.problems, added))

    def _confirm_patient(self, candidate) -> bool:
        """Ask before pairing two studies whose patient identity disagrees (fields named, no values)."""
        answer = QMessageBox.question(
            self,
            "Confirm the prior's patient",
            f"The prior study of {_date(candidate.study.date)} may be another patient's: "
            f"{', '.join(candidate.mismatches)}.\nCompare it with this study anyway?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _show_comparison(self, volume: CTVolume, notes: tuple[str, ...], added: list, result) -> None:
        if self._failed(volume, result):
            return
        prior, reading = result
        self.follow_up = reading.to_dict() | {PRIOR_SOURCE: prior.location}
        ids = {m.id for m in prior.markers}
        added = [m for m in added if isinstance(m, dict) and m.get("id") in ids]  # this prior's kept
        if added:
            self.follow_up[PRIOR_ADDED] = added
        self.save_session()
        self.prior_view.show_prior(prior, reading)
        self.review.table.set_follow_up(reading)
        self._idle(_summary(reading) + (f" ({'; '.join(notes)})" if notes else ""))

    def _failed(self, volume: CTVolume, result) -> bool:
        """True (and said) when the job failed, or another study is shown now."""
        if self.volume is not volume:
            self._idle("Not compared: another study is shown now")
            return True
        if isinstance(result, str):
            self._idle(f"Not compared: {result}")
            self._warn("Could not compare with the prior", result)
            return True
        return False

    def _restore_follow_up(self, session, fill: bool = True) -> None:
        """The shown study's saved reading (or none): the table's columns (filled at the table's next
        fill with ``fill=False``); the prior view is cleared."""
        self.follow_up = dict(session.follow_up) if session else {}
        self.prior_view.clear()
        self.discard_carry()  # a proposal carried into another study is gone (app.compare_carry)
        try:
            reading = FollowUp.from_dict(self.follow_up) if self.follow_up else None
        except ValueError:
            reading = None
        self.review.table.set_follow_up(reading, fill)

    def show_saved_prior(self, volume: CTVolume, message: str) -> None:
        """The prior of the shown study's saved reading beside it again, loaded in the background (its
        registration and pairings are the saved ones); nothing without a reading."""
        try:
            reading = FollowUp.from_dict(self.follow_up) if self.follow_up else None
        except ValueError:
            reading = None
        if reading is None:
            return
        location = str(self.follow_up.get(PRIOR_SOURCE) or "")
        sessions = self.sessions
        if not location:  # a reading saved before the prior's place was kept: its own session's
            try:
                saved = sessions.load(reading.prior.study_uid, reading.prior.series_uid)
            except SessionCorrupt:
                saved = None
            location = saved.source if saved is not None else ""
        if not location:
            self._idle(f"{message} | press P to show the prior beside it")
            return
        wanted = (reading.prior.study_uid, reading.prior.series_uid)
        record = dict(self.follow_up)

        def job(progress, cancelled):
            prior = _load_study(location, wanted[0], cancelled=cancelled)
            if session_key(prior) != wanted:
                raise StudyLoadError(location, "the compared prior series is not there any more")
            check(cancelled)
            prior_markers, prior_masks = _prior_markers(sessions, prior, location)
            return PriorStudy(prior, location, with_added(prior_markers, record), prior_masks)

        def done(result) -> None:
            if self.volume is not volume or self.follow_up.get(PRIOR_SOURCE, location) != location:
                return  # another study, or another reading, is shown now
            if isinstance(result, str):
                self._idle(f"{message} | the prior of the saved reading could not be shown: {result}")
                return
            self.prior_view.show_prior(result, reading)
            self._idle(f"{message} | {_summary(reading)}")

        self.statusBar().showMessage(f"{message} | loading the prior of {reading.prior.date.isoformat()}...")
        self._run(guarded(job), done, alongside=True)


@dataclass(frozen=True)
class PriorStudy:
    """The prior shown beside the current study: its volume, where it was loaded from, its markers."""

    volume: CTVolume
    location: str
    markers: list
    masks: dict


def guarded(job):
    """The job, with a study or reading that cannot be used returned as its one-line reason."""

    def run(progress, cancelled):
        try:
            return job(progress, cancelled)
        except (StudyLoadError, MarkerError, SessionCorrupt, PacsError, ValueError) as exc:
            return str(exc)

    return run


def _folders(source: str) -> list[Path]:
    """Where to look for priors: the folder the study was opened from, then the one above it (a
    patient's studies side by side); none for a study opened from a volume file."""
    path = Path(source) if source else None
    if path is None or not path.exists() or is_volume_file(path):
        return []
    folder = path if path.is_dir() else path.parent
    return [folder] if folder.parent == folder else [folder, folder.parent]


def _pacs_sources() -> tuple[list[PacsSource], tuple[str, ...]]:
    """A source per PACS node of the settings, and the note of settings that cannot be read."""
    try:
        settings = load_settings()
    except PacsError as exc:
        return [], (f"PACS not asked: {exc}",)
    sources, notes = [], []
    for name in settings.nodes:
        try:
            sources.append(PacsSource(resolve(name, settings)))  # with its secret, if it has one
        except PacsError as exc:
            notes.append(f"PACS not asked: {exc}")
    return sources, tuple(notes)


def _retrieve(study, progress, cancelled) -> str:
    """The study's CT series retrieved from its PACS node into the study cache (what an earlier try
    left is kept); the folder it is in."""
    node = study.node
    ct = [s.series_uid for s in client.list_series(node, study.study_uid) if s.is_ct]
    if not ct:
        raise PacsError(f"{node.label}: the prior study has no CT series")
    got = client.get(
        node, study.study_uid, series_uids=ct, progress=lambda _, done, total: progress(done, total),
        cancelled=cancelled,
    )  # fmt: skip
    return str(got.folder)


def _prior_markers(sessions, prior: CTVolume, location: str):
    """The prior's markers and masks: its saved session's, else a ``markers.json`` in its folder
    (or the one above its images)."""
    session = sessions.load(*session_key(prior))
    if session is not None and session.markers:
        return list(session.markers), dict(session.masks)
    for folder in (Path(location), Path(location).parent):  # the study's folder, or its images'
        if (folder / "markers.json").is_file():
            return read_markers(folder / "markers.json"), {}
    return [], {}


def with_added(markers: list, record: dict) -> list:
    """The prior's ``markers`` and those the reader added to it in the reading ``record``
    (``PRIOR_ADDED``); an entry that cannot be read, or whose id is taken, is left out."""
    kept, ids = list(markers), {m.id for m in markers}
    entries = record.get(PRIOR_ADDED)
    for entry in entries if isinstance(entries, list) else []:
        try:
            marker = NoduleMarker.from_dict(entry)
        except MarkerError:
            continue
        if marker.id not in ids:
            kept.append(marker)
            ids.add(marker.id)
    return kept


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 else (value or "undated")


def _summary(reading: FollowUp) -> str:
    due = f", due {reading.due.isoformat()}" if reading.due else ""
    return (
        f"Compared with the prior of {reading.prior.date.isoformat()} ({reading.interval_days} days): "
        f"{len(reading.pairs)} paired, {len(reading.new)} new, {len(reading.resolved)} resolved / not "
        f"found | exam Lung-RADS {reading.category}: {reading.follow_up}{due}"
    )
