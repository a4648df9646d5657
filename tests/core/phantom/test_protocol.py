"""Scan protocols: the named matrix cells, the randomised training distribution and its stated domain."""

import json

import numpy as np
import pytest

from core.phantom.protocol import DOMAIN, MATRIX, NOMINAL, ScanProtocol, nominal_domain, random_protocol


def test_nominal_is_todays_rendering():
    assert (NOMINAL.slice_thickness_mm, NOMINAL.slice_interval_mm) == (1.25, 1.25)
    assert NOMINAL.pixel_spacing_mm == 0.7
    assert (NOMINAL.kernel, NOMINAL.noise_hu, NOMINAL.hu_offset) == ("soft", 20.0, 0.0)


def test_matrix_has_twelve_distinct_cells():
    assert len(MATRIX) == 12
    assert len(set(MATRIX.values())) == 12
    assert MATRIX["1.25mm-soft-standard"] == NOMINAL
    thick = {p.slice_thickness_mm for p in MATRIX.values()}
    assert thick == {1.25, 2.5, 5.0}
    assert {p.kernel for p in MATRIX.values()} == {"soft", "sharp"}
    # low dose doubles the noise of the same thickness and kernel
    assert MATRIX["2.5mm-sharp-low"].noise_hu == pytest.approx(
        2 * MATRIX["2.5mm-sharp-standard"].noise_hu, rel=1e-3
    )


def _inside(protocol: ScanProtocol, domain: dict) -> bool:
    return (
        domain["slice_thickness_mm"][0] <= protocol.slice_thickness_mm <= domain["slice_thickness_mm"][1]
        and domain["pixel_spacing_mm"][0] <= protocol.pixel_spacing_mm <= domain["pixel_spacing_mm"][1]
        and domain["noise_hu"][0] <= protocol.noise_hu <= domain["noise_hu"][1]
        and domain["hu_offset"][0] <= protocol.hu_offset <= domain["hu_offset"][1]
        and protocol.kernel in domain["kernels"]
    )


def test_random_protocols_stay_inside_domain_and_cover_it():
    rng = np.random.default_rng(0)
    drawn = [random_protocol(rng) for _ in range(2000)]
    assert all(_inside(p, DOMAIN) for p in drawn)
    thick = [p.slice_thickness_mm for p in drawn]
    assert min(thick) == 0.625 and max(thick) == 5.0
    assert any(p.slice_interval_mm < p.slice_thickness_mm for p in drawn)  # overlapping reconstructions
    assert {p.kernel for p in drawn} == set(DOMAIN["kernels"])
    # every matrix cell lies inside the training domain
    assert all(_inside(p, DOMAIN) for p in MATRIX.values())
    json.dumps(DOMAIN)  # it goes into the model card


def test_random_protocol_is_reproducible():
    a = [random_protocol(np.random.default_rng(5)) for _ in range(2)]
    assert a[0] == a[1]


def test_nominal_domain_is_a_point():
    domain = nominal_domain()
    assert _inside(NOMINAL, domain)
    assert not _inside(MATRIX["5mm-soft-standard"], domain)


@pytest.mark.parametrize("protocol", [NOMINAL, *MATRIX.values(), random_protocol(np.random.default_rng(1))])
def test_dict_round_trip(protocol):
    data = json.loads(json.dumps(protocol.to_dict()))
    assert ScanProtocol.from_dict(data) == protocol


@pytest.mark.parametrize(
    "bad",
    [
        {"kernel": "bone"},
        {"slice_thickness_mm": 8.0, "slice_interval_mm": 8.0},
        {"slice_interval_mm": 2.0},  # a gap between slices
        {"noise_hu": -1.0},
        {"hu_offset": 500.0},
    ],
)
def test_bad_protocols_are_refused(bad):
    with pytest.raises(ValueError):
        ScanProtocol(**bad)


def test_from_dict_refuses_unknown_fields():
    with pytest.raises(ValueError, match="unknown scan protocol field"):
        ScanProtocol.from_dict({**NOMINAL.to_dict(), "contrast": 1})
