"""The label record: round trips through dicts and JSON, and every refusal names what is wrong."""

from __future__ import annotations

import json
import math

import pytest

from core.nodule.labels import SCHEMA, LabelError, LabelledNodule, NoduleLabel


def full_label() -> NoduleLabel:
    return NoduleLabel(
        malignancy=3.75,  # a mean of readers
        attributes={"spiculation": 4.0, "calcification": 6.0, "internal_structure": 1.0, "texture": 5.0},
        source="lidc",
        reader="4 LIDC readers",
        confirmed_at="2024-05-01T10:00:00+00:00",
    )


def labelled(**changes) -> LabelledNodule:
    fields = {
        "marker_id": "m1",
        "centre_mm": (-12.5, 30.0, -150.25),
        "diameter_mm": 8.5,
        "label": full_label(),
        "study_uid": "1.2.3",
        "series_uid": "1.2.3.4",
    } | changes
    return LabelledNodule(**fields)


def test_label_round_trips_through_a_dict_and_json():
    label = full_label()
    assert NoduleLabel.from_dict(label.to_dict()) == label
    assert NoduleLabel.from_dict(json.loads(json.dumps(label.to_dict()))) == label
    empty = NoduleLabel()
    assert empty.to_dict()["malignancy"] is None and NoduleLabel.from_dict(empty.to_dict()) == empty
    assert NoduleLabel.from_dict({}) == empty  # every field has a default


def test_labelled_nodule_round_trips_with_its_schema():
    nodule = labelled()
    data = nodule.to_dict()
    assert data["schema"] == SCHEMA and data["center_mm"] == [-12.5, 30.0, -150.25]
    assert LabelledNodule.from_dict(data) == nodule
    assert LabelledNodule.from_dict(json.loads(json.dumps(data))) == nodule
    del data["schema"]  # records written before the schema field are read as the current one
    assert LabelledNodule.from_dict(data) == nodule
    assert "patient" not in json.dumps(nodule.to_dict()).lower()  # UIDs only, never the patient


def test_classification_follows_the_paper():
    assert NoduleLabel(malignancy=3.5).classification == "malignant"
    assert NoduleLabel(malignancy=2.5).classification == "benign"
    assert NoduleLabel(malignancy=3).classification == "indeterminate"
    assert NoduleLabel().classification is None


@pytest.mark.parametrize(
    ("name", "value", "top"),
    [
        ("malignancy", 0.5, 5),
        ("malignancy", 5.5, 5),
        ("malignancy", math.nan, 5),
        ("calcification", 7, 6),
        ("internal_structure", 5, 4),
        ("spiculation", 0, 5),
        ("texture", math.inf, 5),
    ],
)
def test_ratings_outside_their_scale_are_refused(name, value, top):
    kwargs = {"malignancy": value} if name == "malignancy" else {"attributes": {name: value}}
    with pytest.raises(LabelError, match=rf"{name} .* outside its scale 1-{top}"):
        NoduleLabel(**kwargs)
    assert NoduleLabel(**({"malignancy": top} if name == "malignancy" else {"attributes": {name: top}}))


def test_unknown_attribute_and_bad_source_are_refused():
    with pytest.raises(LabelError, match="unknown attribute 'roundness'"):
        NoduleLabel(attributes={"roundness": 3})
    with pytest.raises(LabelError, match="unknown attribute 'malignancy'"):  # not an attribute
        NoduleLabel(attributes={"malignancy": 3})
    with pytest.raises(LabelError, match="source 'guess' is not one of reader, lidc, phantom"):
        NoduleLabel(source="guess")
    with pytest.raises(LabelError, match="unknown attribute"):
        NoduleLabel.from_dict({"attributes": {"colour": 2}})


@pytest.mark.parametrize(
    "record",
    [
        {"malignancy": "high"},
        {"attributes": {"spiculation": "very"}},
        {"attributes": ["spiculation"]},
        {"malignancy": [4]},
    ],
)
def test_label_records_that_are_not_labels_are_refused(record):
    with pytest.raises(LabelError):
        NoduleLabel.from_dict(record)
    with pytest.raises(LabelError, match="not a label record"):
        NoduleLabel.from_dict("malignant")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"centre_mm": (1.0, 2.0)}, r"marker m1: centre .* is not a 3D point"),
        ({"centre_mm": (1.0, math.nan, 2.0)}, "is not a 3D point"),
        ({"centre_mm": (1.0, 2.0, 3.0, 4.0)}, "is not a 3D point"),
        ({"diameter_mm": 0.0}, r"marker m1: diameter 0.0 mm is not in \(0, 100\]"),
        ({"diameter_mm": -3.0}, "is not in"),
        ({"diameter_mm": 101.0}, "is not in"),
        ({"diameter_mm": math.inf}, "is not in"),
    ],
)
def test_bad_centre_or_diameter_is_refused_naming_the_marker(changes, message):
    with pytest.raises(LabelError, match=message):
        labelled(**changes)


def test_wrong_schema_and_broken_records_are_refused():
    data = labelled().to_dict()
    with pytest.raises(LabelError, match="schema 'mtmr-reader/label/0' is not mtmr-reader/label/1"):
        LabelledNodule.from_dict(data | {"schema": "mtmr-reader/label/0"})
    for key in ("marker_id", "center_mm", "diameter_mm", "label"):
        broken = {k: v for k, v in data.items() if k != key}
        with pytest.raises(LabelError, match=f"not a labelled-nodule record .*{key}"):
            LabelledNodule.from_dict(broken)
    with pytest.raises(LabelError, match="not a labelled-nodule record"):
        LabelledNodule.from_dict(data | {"center_mm": "here"})
    with pytest.raises(LabelError, match="is not a 3D point"):
        LabelledNodule.from_dict(data | {"center_mm": [1, 2]})
    with pytest.raises(LabelError, match=r"diameter .* is not in"):
        LabelledNodule.from_dict(data | {"diameter_mm": "0"})
    with pytest.raises(LabelError, match="outside its scale"):
        LabelledNodule.from_dict(data | {"label": {"malignancy": 9}})
    with pytest.raises(LabelError, match="source"):
        LabelledNodule.from_dict(data | {"label": {"source": "model"}})


@pytest.mark.parametrize("record", [[], None, "label", 3])
def test_a_record_that_is_not_an_object_is_refused_clearly(record):
    with pytest.raises(LabelError, match="JSON object"):
        LabelledNodule.from_dict(record)


def test_a_boolean_is_not_a_rating():
    with pytest.raises(LabelError, match="malignancy"):
        NoduleLabel(malignancy=True)
