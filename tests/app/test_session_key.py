"""One session-key rule for the app and the CLI: a NIfTI study (no UIDs) labelled in the app, opened by
a relative path, is found by ``report`` started elsewhere with the absolute path."""

from __future__ import annotations

import json
import os

import numpy as np
import SimpleITK as sitk

from app.main_window import MainWindow
from core.nodule.labels import NoduleLabel
from core.nodule.markers import NoduleMarker
from main import main
from tests.core.cli.test_report import model  # noqa: F401  (the tiny checkpoint fixture)


def test_labels_saved_in_the_app_on_a_nifti_reach_report(qtbot, tmp_path, monkeypatch, model):  # noqa: F811
    image = sitk.GetImageFromArray(np.full((12, 40, 40), -800, dtype=np.int16))
    image.SetSpacing((1.0, 1.0, 2.0))
    (tmp_path / "case").mkdir()
    sitk.WriteImage(image, str(tmp_path / "case" / "chest.nii.gz"))
    monkeypatch.chdir(tmp_path / "case")

    window = MainWindow()
    qtbot.addWidget(window)
    window.open_path("chest.nii.gz")  # relative, as typed on a command line
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=20_000)
    marker = NoduleMarker(id="n1", name="N1", centre_mm=(20.0, 20.0, 12.0), diameter_mm=8.0)
    window.markers.reset([marker])
    window.review._label_confirmed("n1", NoduleLabel(malignancy=5, attributes={"texture": 1}))
    window.save_session()

    markers = tmp_path / "markers.json"
    markers.write_text(json.dumps({"markers": [marker.to_dict()]}))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    study = os.path.join(tmp_path, "case", "chest.nii.gz")
    argv = ["report", study, "--markers", str(markers), "--model", str(model), "--device", "cpu",
            "--out", str(out), "--format", "json"]  # fmt: skip
    assert main(argv) == 0
    nodule = json.loads((out / "report.json").read_text())["nodules"][0]
    assert nodule["reader"] is not None and nodule["reader"]["malignancy"] == 5
