"""Training data under scan protocols: fixed or randomised per rendering, recorded with every sample."""

import hashlib
import json
from dataclasses import asdict

import numpy as np
import pytest

from core.lidc.table import load_nodules
from core.model.patches import PatchConfig
from core.phantom.protocol import DOMAIN, MATRIX, NOMINAL, ScanProtocol
from core.training.data import DATASET_VERSION, DatasetSpec, NoduleDataset, build_dataset, subset

PATCH = PatchConfig(mode="paper", size=16, max_slices=2, channels=3, neighbour_fraction=0.25)


@pytest.fixture(scope="module")
def small_nodules():
    spec = DatasetSpec(split="test", max_diameter_mm=6.0)
    return spec.select(load_nodules())[:2]


def _spec(**kwargs) -> DatasetSpec:
    return DatasetSpec(split="test", seed=3, patch=PATCH, chests=1, chest_size=192, **kwargs)


def test_randomised_dataset_records_each_renderings_protocol(small_nodules, tmp_path):
    data = build_dataset(_spec(variants=2, randomise=True), small_nodules)
    protocols = data.slice_protocols()
    assert len(protocols) == len(data.patches) and all(p is not None for p in protocols)
    per_rendering = {
        (int(n), int(v)): p for n, v, p in zip(data.nodule_index, data.variant, protocols, strict=True)
    }
    assert len(per_rendering) == 4
    assert len(set(per_rendering.values())) == 4  # a fresh protocol for every rendering
    for p in per_rendering.values():
        assert DOMAIN["slice_thickness_mm"][0] <= p.slice_thickness_mm <= DOMAIN["slice_thickness_mm"][1]
    # saved without pickle and read back; a subset keeps each slice's protocol
    path = tmp_path / "data.npz"
    data.save(path)
    with np.load(path, allow_pickle=False) as raw:
        assert raw["protocols"].dtype.kind == "U"
    loaded = NoduleDataset.load(path)
    assert loaded.slice_protocols() == protocols
    first = subset(loaded, np.array([True, False]))
    assert first.slice_protocols() == [p for p, n in zip(protocols, data.nodule_index, strict=True) if n == 0]


def test_fixed_protocol_dataset_records_it(small_nodules):
    data = build_dataset(_spec(variants=0, protocol=MATRIX["5mm-sharp-low"]), small_nodules[:1])
    assert set(data.slice_protocols()) == {MATRIX["5mm-sharp-low"]}
    assert np.isfinite(data.patches.astype(np.float32)).all()


def test_dataset_saved_before_protocols_loads_unrecorded(tmp_path):
    old = {
        "patches": np.zeros((2, 1, 8, 8), np.float16),
        "nodule_index": np.array([0, 0], np.int32),
        "variant": np.zeros(2, np.int16),
        "labels": np.array([1], np.int8),
        "attributes": np.zeros((1, 8), np.float32),
        "diameters": np.array([5.0], np.float32),
        "nodule_ids": np.array(["a"]),
        "patient_ids": np.array(["p"]),
    }
    np.savez(tmp_path / "old.npz", **old)
    data = NoduleDataset.load(tmp_path / "old.npz")
    assert data.slice_protocols() == [None, None]


def test_cache_keys():
    nominal = DatasetSpec(split="val")
    # the key of a spec without protocol options is the one datasets were cached under before
    before = json.dumps({"version": DATASET_VERSION, **asdict(nominal)} | {}, sort_keys=True)
    legacy = {k: v for k, v in json.loads(before).items() if k not in ("protocol", "randomise", "chest_size")}
    expected = hashlib.sha256(json.dumps(legacy, sort_keys=True).encode()).hexdigest()[:16]
    assert nominal.key() == expected
    keys = {
        nominal.key(),
        DatasetSpec(split="val", randomise=True).key(),
        DatasetSpec(split="val", protocol=MATRIX["2.5mm-soft-low"]).key(),
        DatasetSpec(split="val", protocol=MATRIX["5mm-soft-low"]).key(),
    }
    assert len(keys) == 4
    assert nominal.scan_protocol() == NOMINAL


def test_a_changed_training_distribution_is_not_read_from_the_old_cache(monkeypatch):
    """Widening the randomised pixel spacings once left the key alone, and renderings of the old
    distribution were taken for the new one under a card stating the new domain."""
    import core.phantom.protocol as protocol

    before = DatasetSpec(split="val", randomise=True).key()
    nominal = DatasetSpec(split="val").key()
    monkeypatch.setattr(protocol, "PIXEL_SPACINGS_MM", (0.6, 0.7, 0.8))
    assert DatasetSpec(split="val", randomise=True).key() != before
    assert DatasetSpec(split="val").key() == nominal  # fixed protocols do not depend on the draw


def test_spec_refuses_contradictions():
    with pytest.raises(ValueError, match="not both"):
        DatasetSpec(split="val", protocol=NOMINAL, randomise=True)
    with pytest.raises(ValueError, match="not both"):
        DatasetSpec(split="val", protocol=ScanProtocol(), noise=40.0)


def test_concatenated_datasets_keep_each_slices_protocol():
    from core.training.labelled import concatenate
    from tests.core.training.fake_data import fake_dataset

    a, b = fake_dataset(nodules=2, slices=1), fake_dataset(nodules=3, slices=2)
    b.protocols = np.array([json.dumps(MATRIX["5mm-soft-low"].to_dict()), json.dumps(NOMINAL.to_dict())])
    b.protocol_index = np.array([1, 1, 0, 0, 1, 1], np.int16)
    both = concatenate([a, b])
    low = MATRIX["5mm-soft-low"]
    expected = [None, None, NOMINAL, NOMINAL, low, low, NOMINAL, NOMINAL]
    assert both.slice_protocols() == expected
