"""The labelled-nodule library: entries with patches and thumbnails, de-duplication, no patient data,
export/import round trips, refused bad files, and writes that leave the library as it was on failure."""

from __future__ import annotations

import errno
import io
import json
import os
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.model.patches import PatchConfig
from core.nodule.labels import LabelledNodule, NoduleLabel
from core.reading import library_transfer
from core.reading.library import Library, LibraryError, entry_id, preprocessing_key
from core.training.labelled import dataset_from_labels
from core.volume import CTVolume, VolumeMetadata

PATCH = PatchConfig(size=32, max_slices=3)
PHI = ("DOE^JANE", "PID-0042-SECRET", "19500101")


def uid(study: int, series: bool = False) -> str:
    return f"1.2.826.0.1.3680043.8.498.{study}{'.7' if series else ''}"


def study_volume(study: int) -> CTVolume:
    """A small chest-like box with a big bright nodule at (-8, 0, 0) mm and a small faint one at (8, 0, 0)."""
    shape, spacing = (24, 48, 48), np.array([0.8, 0.8, 1.0])
    z, y, x = np.indices(shape).astype(np.float64)
    centre = np.array(shape) / 2
    mm = [(x - centre[2]) * spacing[0], (y - centre[1]) * spacing[1], (z - centre[0]) * spacing[2]]
    hu = np.full(shape, -850, np.int16)
    hu[np.sqrt((mm[0] + 8) ** 2 + mm[1] ** 2 + mm[2] ** 2) <= 5.0] = 60
    hu[np.sqrt((mm[0] - 8) ** 2 + mm[1] ** 2 + mm[2] ** 2) <= 2.0] = -200
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -centre[::-1] * spacing
    metadata = VolumeMetadata(
        patient_name=PHI[0],
        patient_id=PHI[1],
        patient_birth_date=PHI[2],
        study_uid=uid(study),
        series_uid=uid(study, series=True),
    )
    return CTVolume(hu, affine, metadata)


def study_nodules(study: int, malignant: float = 5.0, benign: float = 1.0) -> list[LabelledNodule]:
    def one(marker, centre, diameter, malignancy, **attributes):
        label = NoduleLabel(malignancy, attributes, reader="Dr Reader", confirmed_at="2025-01-02T03:04Z")
        return LabelledNodule(marker, centre, diameter, label, uid(study), uid(study, series=True))

    return [
        one("m1", (-8.0, 0.0, 0.0), 10.0, malignant, spiculation=4, margin=2),
        one("m2", (8.0, 0.0, 0.0), 4.0, benign, calcification=6),
    ]


def fill(library: Library, studies: int = 4, patch: PatchConfig = PATCH) -> None:
    for study in range(1, studies + 1):
        volume = study_volume(study)
        for nodule in study_nodules(study):
            library.add(volume, nodule, patch)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (temporary files included: none may be left)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def library(tmp_path) -> Library:
    lib = Library(tmp_path / "labels")
    fill(lib)
    return lib


# -- entries ---------------------------------------------------------------------------------------


def test_default_folder_is_the_user_labels_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MTMR_READER_HOME", str(tmp_path / "home"))
    assert Library().root == tmp_path / "home" / "data" / "labels"


def test_an_entry_keeps_the_record_the_patches_and_a_thumbnail(tmp_path):
    lib = Library(tmp_path)
    volume, nodules = study_volume(1), study_nodules(1)
    entry = lib.add(volume, nodules[0], PATCH)
    assert entry.id == entry_id(uid(1, series=True), "m1") and entry.nodule == nodules[0]
    assert entry.preprocessing == PATCH.to_dict() and entry.preprocessing_key == preprocessing_key(PATCH)
    assert entry.added_at == entry.updated_at and entry.added_at.endswith("+00:00")
    assert entry.slices == 3 and entry.source == "reader" and entry.label.malignancy == 5.0
    png = entry.thumbnail_png()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) < 4000
    assert int.from_bytes(png[16:20], "big") == int.from_bytes(png[20:24], "big") == 32  # IHDR width, height
    [listed] = lib.entries()
    assert listed == entry and lib.get(entry.id) == entry
    expected = dataset_from_labels(volume, nodules[:1], PATCH)
    data = lib.dataset(PATCH)
    np.testing.assert_array_equal(data.patches, expected.patches)
    for name in ("labels", "attributes", "diameters", "nodule_ids", "nodule_index", "variant"):
        np.testing.assert_array_equal(getattr(data, name), getattr(expected, name))
    assert data.patient_ids.tolist() == [uid(1)]  # grouped by study for the validation split


def test_uids_missing_on_the_label_come_from_the_volume(tmp_path):
    lib = Library(tmp_path)
    nodule = replace(study_nodules(2)[1], study_uid="", series_uid="")
    entry = lib.add(study_volume(2), nodule, PATCH)
    assert (entry.nodule.study_uid, entry.nodule.series_uid) == (uid(2), uid(2, series=True))


def test_readding_a_marker_replaces_its_label_and_keeps_the_date_added(library):
    before = {e.id: e for e in library.entries()}
    nodule = replace(study_nodules(1)[0], label=NoduleLabel(2.0, {"texture": 3}))
    entry = library.add(study_volume(1), nodule, PATCH)
    after = {e.id: e for e in library.entries()}
    assert len(after) == len(before) == 8
    assert after[entry.id].label.malignancy == 2.0 and after[entry.id].added_at == before[entry.id].added_at
    assert after[entry.id].updated_at > before[entry.id].updated_at
    assert library.dataset(PATCH).labels.tolist().count(0) == 5  # 4 benign + the re-rated one


def test_nothing_is_added_for_a_nodule_without_ratings_or_outside_the_volume(tmp_path):
    lib = Library(tmp_path)
    unrated = replace(study_nodules(1)[0], label=NoduleLabel(None))
    with pytest.raises(LibraryError, match="no malignancy or attribute rating"):
        lib.add(study_volume(1), unrated, PATCH)
    outside = replace(study_nodules(1)[0], centre_mm=(500.0, 0.0, 0.0))
    with pytest.raises(LibraryError, match=r"m1.*outside the volume"):
        lib.add(study_volume(1), outside, PATCH)
    other_series = replace(study_nodules(1)[0], series_uid="9.9.9")
    with pytest.raises(LibraryError, match=r"series 9\.9\.9"):
        lib.add(study_volume(1), other_series, PATCH)
    assert snapshot(tmp_path) == {}


def test_no_patient_name_id_or_birth_date_is_stored_or_exported(library, tmp_path):
    library_transfer.export(library, tmp_path / "export.zip")
    texts = []
    for path in [*library.root.rglob("*"), tmp_path / "export.zip"]:
        if not path.is_file():
            continue
        assert not any(p.lower() in path.name.lower() for p in PHI) and uid(1) not in path.name
        with zipfile.ZipFile(path) as archive:  # npz and export alike: read what is inside, uncompressed
            for name in archive.namelist():
                blob = archive.read(name)
                texts.append(blob)
                if name.endswith(".npz"):
                    with zipfile.ZipFile(io.BytesIO(blob)) as inner:
                        texts += [inner.read(n) for n in inner.namelist()]
    everything = b"".join(texts)
    assert uid(1).encode("utf-32-le") in everything  # the UIDs are there (the check reads the records)...
    for value in PHI:  # ...but nothing that identifies the patient
        assert value.encode() not in everything and value.encode("utf-32-le") not in everything


def test_remove_deletes_one_entry(library):
    first, *rest = library.entries()
    library.remove(first.id)
    assert [e.id for e in library.entries()] == [e.id for e in rest]
    with pytest.raises(LibraryError, match="no library entry"):
        library.remove(first.id)


def test_a_damaged_entry_is_reported_and_left_out(library):
    first = library.entries()[0]
    blob = bytearray(first.path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    first.path.write_bytes(bytes(blob))
    entries, problems = library.scan()
    assert len(entries) == 7 and len(problems) == 1 and problems[0].path == first.path
    assert first.path.name in str(problems[0])


def test_entries_cut_with_another_preprocessing_are_refused_with_the_reason(library):
    other = PatchConfig(size=32, max_slices=3, fov_mm=64.0)
    library.add(study_volume(5), study_nodules(5)[0], other)
    with pytest.raises(LibraryError, match=r"1 of 9 library entries.*cannot be re-cut without the original"):
        library.dataset(PATCH)
    assert len(library.dataset(PATCH, skip_other=True).labels) == 8
    assert len(library.dataset(other, skip_other=True).labels) == 1


# -- export and import -----------------------------------------------------------------------------


def test_export_import_round_trip(library, tmp_path):
    assert library_transfer.export(library, tmp_path / "lib.zip") == 8
    other = Library(tmp_path / "elsewhere")
    assert library_transfer.import_(other, tmp_path / "lib.zip") == (8, 0, 0)
    mine, theirs = library.entries(), other.entries()
    assert [(e.id, e.nodule, e.added_at, e.patches_sha256) for e in mine] == [
        (e.id, e.nodule, e.added_at, e.patches_sha256) for e in theirs
    ]
    np.testing.assert_array_equal(library.dataset(PATCH).patches, other.dataset(PATCH).patches)
    assert library_transfer.import_(other, tmp_path / "lib.zip") == (0, 0, 8)  # identical: skipped


def test_import_replaces_older_entries_and_keeps_newer_ones(library, tmp_path):
    library_transfer.export(library, tmp_path / "old.zip")
    other = Library(tmp_path / "elsewhere")
    library_transfer.import_(other, tmp_path / "old.zip")
    changed = replace(study_nodules(1)[0], label=NoduleLabel(1.0))
    library.add(study_volume(1), changed, PATCH)  # newer here
    library_transfer.export(library, tmp_path / "new.zip")
    assert library_transfer.import_(other, tmp_path / "new.zip") == (0, 1, 7)
    assert other.get(entry_id(uid(1, True), "m1")).label.malignancy == 1.0
    assert library_transfer.import_(library, tmp_path / "old.zip") == (
        0,
        0,
        8,
    )  # older: the newer label stays
    assert library.get(entry_id(uid(1, True), "m1")).label.malignancy == 1.0


def _rewrite(source: Path, target: Path, edit) -> None:
    """Copy an export, letting ``edit(name, bytes) -> bytes`` change members (manifest hashes kept)."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(target, "w") as archive:
        for name, blob in members.items():
            archive.writestr(name, edit(name, blob))


def _relabel(blob: bytes, malignancy) -> bytes:
    with np.load(io.BytesIO(blob)) as data:
        arrays = {k: data[k] for k in data.files}
    record = json.loads(str(arrays["record"]))
    record["nodule"]["label"]["malignancy"] = malignancy
    arrays["record"] = np.array(json.dumps(record))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _fix_manifest(path: Path) -> None:
    import hashlib

    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(members["manifest.json"])
    for item in manifest["entries"]:
        item["sha256"] = hashlib.sha256(members[item["file"]]).hexdigest()
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, blob in members.items():
            archive.writestr(name, blob)


def test_bad_import_files_are_refused_naming_the_file_and_change_nothing(library, tmp_path):
    library_transfer.export(library, tmp_path / "good.zip")
    target = Library(tmp_path / "target")
    fill(target, studies=1)
    before = snapshot(target.root)
    bad = tmp_path / "bad.zip"
    last = sorted(zipfile.ZipFile(tmp_path / "good.zip").namelist())[-2]  # an entry imported late

    cases = {
        "not a readable library export": lambda: bad.write_bytes(b"PK\x03\x04 not really"),
        "no manifest.json": lambda: (
            _rewrite(tmp_path / "good.zip", bad, lambda n, b: b) or _drop(bad, "manifest.json")
        ),
        "does not match its hash": lambda: _rewrite(
            tmp_path / "good.zip", bad, lambda n, b: b[:-10] + b"0123456789" if n == last else b
        ),
        "malignancy 7.0 is outside its scale": lambda: (
            _rewrite(tmp_path / "good.zip", bad, lambda n, b: _relabel(b, 7) if n == last else b),
            _fix_manifest(bad),
        ),
        "export schema": lambda: _rewrite(
            tmp_path / "good.zip", bad, lambda n, b: b.replace(b"library-export/1", b"library-export/9")
        ),
    }
    for reason, make in cases.items():
        make()
        with pytest.raises(LibraryError, match=reason) as caught:
            library_transfer.import_(target, bad)
        assert caught.value.path == bad and "bad.zip" in str(caught.value)
        assert snapshot(target.root) == before, reason
    with pytest.raises(LibraryError, match="no such library export"):
        library_transfer.import_(target, tmp_path / "missing.zip")


def _drop(path: Path, member: str) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist() if n != member}
    with zipfile.ZipFile(path, "w") as archive:
        for name, blob in members.items():
            archive.writestr(name, blob)


# -- failures leave the library as it was ----------------------------------------------------------


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_a_failed_add_or_replace_leaves_the_library_as_it_was(library, monkeypatch, failing):
    before = snapshot(library.root)
    monkeypatch.setattr(os, failing, enospc)
    with pytest.raises(OSError, match="No space"):
        library.add(study_volume(9), study_nodules(9)[0], PATCH)  # a new entry
    with pytest.raises(OSError, match="No space"):
        library.add(study_volume(1), replace(study_nodules(1)[0], label=NoduleLabel(1.0)), PATCH)  # a re-add
    monkeypatch.undo()
    assert snapshot(library.root) == before
    assert library.get(entry_id(uid(1, True), "m1")).label.malignancy == 5.0


def test_a_failed_remove_leaves_the_entry(library, monkeypatch):
    before = snapshot(library.root)
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: enospc())
    with pytest.raises(OSError):
        library.remove(library.entries()[0].id)
    monkeypatch.undo()
    assert snapshot(library.root) == before


@pytest.fixture
def import_file(tmp_path) -> Path:
    """An export whose entries replace two of the library's and add four."""
    source = Library(tmp_path / "source")
    fill(source, studies=1)
    for study in (1, 5, 6):
        volume = study_volume(study)
        for nodule in study_nodules(study, malignant=4.0, benign=2.0):
            source.add(volume, nodule, PATCH)
    library_transfer.export(source, tmp_path / "import.zip")
    return tmp_path / "import.zip"


@pytest.mark.parametrize("fail_at", [1, 3, 6])
def test_an_import_failing_half_way_rolls_back(library, import_file, monkeypatch, fail_at):
    before = snapshot(library.root)
    real_replace, calls = os.replace, []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == fail_at:
            enospc()
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError, match="No space"):
        library_transfer.import_(library, import_file)
    monkeypatch.undo()
    assert snapshot(library.root) == before
    assert library_transfer.import_(library, import_file) == (4, 2, 0)  # and it works once the disk has room


def test_an_import_cut_off_by_a_power_loss_is_rolled_back_when_the_library_opens(
    library, import_file, monkeypatch
):
    before = snapshot(library.root)
    real_replace, calls = os.replace, []

    def dies(src, dst):
        calls.append(dst)
        if len(calls) == 5:  # the journal, then some entries moved in, others not yet
            raise SystemExit("power loss")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dies)
    monkeypatch.setattr(Library, "recover", lambda self: None)  # no chance to clean up
    with pytest.raises(SystemExit):
        library_transfer.import_(library, import_file)
    monkeypatch.undo()
    assert snapshot(library.root) != before  # half-imported on disk...
    reopened = Library(library.root)  # ...until the library is opened again
    assert snapshot(reopened.root) == before
    assert len(reopened.entries()) == 8


def test_a_full_disk_while_staging_an_import_changes_nothing(library, import_file, monkeypatch):
    before = snapshot(library.root)
    monkeypatch.setattr(
        library_transfer, "_write_synced", lambda path, blob: (path.write_bytes(b"x"), enospc())
    )
    with pytest.raises(OSError, match="No space"):
        library_transfer.import_(library, import_file)
    monkeypatch.undo()
    assert snapshot(library.root) == before
