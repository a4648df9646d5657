"""One Lung-RADS rule: with the reader's texture, calcification and spiculation overriding the model's,
the review, the worklist, ``batch``'s CSV and ``report``'s JSON (the SR and PDF's source) show the same
category. The worklist and batch used to ignore the reader."""

from __future__ import annotations

import csv
import json

from app.marker_store import MarkerStore
from app.review import Review
from core.imaging.open_study import open_study
from core.model.inference import Predictor
from core.nodule.labels import NoduleLabel
from core.nodule.lungrads import nodule_category
from core.nodule.markers import NoduleMarker
from core.reading.session import Session, SessionStore
from core.reading.worklist import summarise
from main import main
from tests.core.cli.test_batch import named_series, tiny_model

STUDY, SERIES = "1.2.826.0.1.3680043.8.498.101", "1.2.826.0.1.3680043.8.498.102"
MARKER = NoduleMarker("m1", "N1", (0.0, 0.0, 5.0), 9.0)
# Solid, no benign calcification, marked spiculation: 9 mm solid is 4A, raised to 4X.
READER = NoduleLabel(malignancy=4, attributes={"texture": 5, "calcification": 6, "spiculation": 5})


def test_reader_override_gives_one_category_everywhere(qtbot, tmp_path):
    folder = tmp_path / "studies" / "case"
    named_series(folder, STUDY, SERIES)
    model = tiny_model(tmp_path / "tiny.safetensors")
    volume, _ = open_study(folder)
    (result,) = Predictor(model, device="cpu").predict(volume, [MARKER.to_inference()])
    model_only = nodule_category(MARKER.diameter_mm, result.attributes)
    assert model_only is None or model_only.category != "4X"  # the override must change something

    store = SessionStore()
    session = Session(STUDY, SERIES, [MARKER], {"m1": READER}, results={"m1": result.to_dict()})
    store.save(session)

    markers = MarkerStore()
    review = Review(markers, model_path=model)
    markers.reset([MARKER])
    review.labels = {"m1": READER}
    in_review = review.rads(MARKER, result)

    in_worklist = summarise(store.load(STUDY, SERIES))["lung_rads"]

    assert main(["batch", str(tmp_path / "studies"), "--model", str(model), "--device", "cpu",
                 "--out", str(tmp_path / "rank.csv")]) == 0  # fmt: skip
    with open(tmp_path / "rank.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))

    markers_file = tmp_path / "markers.json"
    markers_file.write_text(json.dumps({"markers": [MARKER.to_dict()]}))
    assert main(["report", str(folder), "--markers", str(markers_file), "--model", str(model),
                 "--device", "cpu", "--out", str(tmp_path / "out"), "--format", "json"]) == 0  # fmt: skip
    document = json.loads((tmp_path / "out" / "report.json").read_text())
    in_report = document["nodules"][0]["lung_rads"]["category"]

    assert (in_review.category, in_worklist, row["lung_rads"], in_report) == ("4X",) * 4
    assert document["study_lung_rads"]["category"] == "4X"
    assert "reader spiculation" in row["lung_rads_rule"]
    assert "reader's texture" in in_review.basis
