"""The codes of the DICOM SR report (``core.report.sr``): this project's private coding scheme 99MTMR,
its codes and its declaration for the Coding Scheme Identification Sequence, and the DCM, SCT, UCUM
and UMLS concepts and units the content tree and the Image Library use.
"""

from __future__ import annotations

import highdicom as hd
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.sr.codedict import codes

from core.nodule.lungrads import CATEGORIES
from core.nodule.meanings import TITLES
from core.nodule.ratings import RATING_MAX

SCHEME = "99MTMR"
SCHEME_NAME = "MTMR Reader codes"
SCHEME_VERSION = "1"
SCHEME_ORGANISATION = "MTMR Reader project"


def _code(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=value, scheme_designator=SCHEME, meaning=meaning)


_RATING_VALUES = {
    "subtlety": "SUBTLETY",
    "internal_structure": "INTSTRUCTURE",
    "calcification": "CALCIFICATION",
    "sphericity": "SPHERICITY",
    "margin": "MARGIN",
    "lobulation": "LOBULATION",
    "spiculation": "SPICULATION",
    "texture": "TEXTURE",
    "malignancy": "MALIGNANCY",
}
RATING_CODES = {
    name: _code(value, f"LIDC {TITLES[name].lower()} rating (1-{RATING_MAX[name]})")
    for name, value in _RATING_VALUES.items()
}
METHOD_MODEL = _code("MODEL", "Model prediction")
METHOD_BY_SOURCE = {
    "reader": _code("READER", "Reader confirmed"),
    "lidc": _code("LIDC", "LIDC-IDRI readers' rating"),
    "phantom": _code("PHANTOM", "Phantom ground truth"),
}
LUNG_RADS = _code("LUNGRADS", "Lung-RADS v2022 category")
STUDY_LUNG_RADS = _code("STUDYLUNGRADS", "Lung-RADS v2022 category of the study")
LUNG_RADS_VALUES = {
    category: _code(f"LUNGRADS-{category}", f"Lung-RADS {category}") for category in CATEGORIES
}
LUNG_RADS_RULE = _code("LUNGRADS-RULE", "Lung-RADS rule")
LUNG_RADS_FOLLOW_UP = _code("LUNGRADS-FU", "Lung-RADS follow-up")
LUNG_RADS_BASIS = _code("LUNGRADS-BASIS", "Lung-RADS basis")
NODULE_TEXTURE = _code("NODULE-TEXTURE", "Nodule texture class")
METHOD_MASK = _code("MASK", "Measured on the nodule's 3D mask")
SOLID_DIAMETER = _code("SOLIDDIAMETER", "Mean diameter of the solid component")
# a follow-up reading (core.followup.compare): the prior time point and the change, per nodule
PRIOR_VOLUME = _code("PRIORVOLUME", "Volume at the prior study")
PRIOR_DIAMETER = _code("PRIORDIAMETER", "Mean diameter at the prior study")
INTERVAL = _code("PRIORINTERVAL", "Interval since the prior study")
VOLUME_CHANGE = _code("VOLUMECHANGE", "Volume change since the prior study")
DIAMETER_CHANGE = _code("DIAMETERCHANGE", "Mean diameter change since the prior study")
DOUBLING_TIME = _code("VDT", "Volume doubling time")
TREND = _code("TREND", "Change since the prior study")
TREND_VALUES = {
    status: _code(value, status)
    for status, value in (
        ("new", "TREND-NEW"),
        ("growing", "TREND-GROWING"),
        ("stable", "TREND-STABLE"),
        ("shrinking", "TREND-SHRINKING"),
        ("change within measurement error", "TREND-WITHINERROR"),
    )
}
DISCLAIMER = _code("DISCLAIMER", "Disclaimer")
IMAGE_WARNING = _code("IMAGEWARNING", "Warning about the images read")
MALIGNANCY_INTERVAL = _code("MALIGNANCYINTERVAL", "Malignancy probability interval")
OOD_WARNING = _code("OODWARNING", "Out-of-distribution warning")
INTERVAL_NOTE = (
    "range over 8 orientations of the central slice (test-time augmentation), calibrated; "
    "not a confidence interval with a guaranteed coverage"
)

CT_OF_CHEST = hd.sr.CodedConcept(value="169069000", scheme_designator="SCT", meaning="CT of chest")
QUALITATIVE_EVALUATIONS = hd.sr.CodedConcept(
    value="C0034375", scheme_designator="UMLS", meaning="Qualitative Evaluations"
)
PROBABILITY_UNIT = codes.UCUM.NoUnits  # "1"
CUBIC_MILLIMETER = hd.sr.CodedConcept(value="mm3", scheme_designator="UCUM", meaning="cubic millimeter")
PERCENT = hd.sr.CodedConcept(value="%", scheme_designator="UCUM", meaning="Percent")
DAYS = hd.sr.CodedConcept(value="d", scheme_designator="UCUM", meaning="day")
# the volumetric (mask) measurements: (concept, derivation); the units are mm3 and mm
VOLUME = codes.SCT.Volume  # 118565006
LONG_AXIS = codes.SCT.LongAxis  # 103339001
SHORT_AXIS = codes.SCT.ShortAxis  # 103340004
SCORE_UNIT = hd.sr.CodedConcept(value="{score}", scheme_designator="UCUM", meaning="score")
UNCERTAINTY_POPULATION = (
    "malignancy probabilities of the nodule's slices and their mirror images; the reported "
    "probability is their mean, its uncertainty their standard deviation"
)
SOURCE = hd.sr.CodedConcept(value="260753009", scheme_designator="SCT", meaning="Source")
PIXELS = hd.sr.CodedConcept(value="{pixels}", scheme_designator="UCUM", meaning="Pixels")
COSINE = hd.sr.CodedConcept(value="{-1:1}", scheme_designator="UCUM", meaning="{-1:1}")
MODALITIES = {"CT": "Computed Tomography", "MR": "Magnetic Resonance", "PT": "Positron emission tomography"}


def coding_scheme() -> CodingSchemeIdentificationItem:
    """The declaration of the private scheme, for the SR's Coding Scheme Identification Sequence."""
    return CodingSchemeIdentificationItem(
        designator=SCHEME,
        name=SCHEME_NAME,
        version=SCHEME_VERSION,
        responsible_organization=SCHEME_ORGANISATION,
    )
