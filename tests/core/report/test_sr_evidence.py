"""The SR's UIDs: derived ones are valid and fixed by their parts; the report's map keeps UIDs unless
the report is anonymised, and then gives one new UID per old one."""

from __future__ import annotations

import re
from types import SimpleNamespace

from core.report.sr_evidence import UidMap, derived_uid


def test_a_derived_uid_is_a_valid_2_25_uid_fixed_by_its_parts():
    uid = derived_uid("mtmr-reader/model", "mtmr", "1.0")
    assert re.fullmatch(r"2\.25\.[1-9]\d*", uid) and len(uid) <= 64
    assert derived_uid("mtmr-reader/model", "mtmr", "1.0") == uid
    assert derived_uid("mtmr-reader/model", "mtmr", "1.1") != uid


def test_the_uid_map_keeps_uids_unless_anonymised():
    assert UidMap(SimpleNamespace(anonymised=False, uid_map=None))("1.2.3") == "1.2.3"
    uids = UidMap(SimpleNamespace(anonymised=True, uid_map={"1.2.3": "9.9"}))
    assert uids("1.2.3") == "9.9"  # the report's own map first
    new = uids("1.2.4")
    assert new.startswith("2.25.") and uids("1.2.4") == new and uids("1.2.5") != new
    assert uids("") == ""
