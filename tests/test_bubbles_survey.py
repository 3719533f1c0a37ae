"""Whole-plane survey (skydetect.bubbles.survey): cross-field merging, the survey fields and
the catalogue of known and new bubbles."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from bubble_fixtures import one_bubble


def _detections(field, glon, glat, size_arcmin, score):
    t = Table()
    n = len(glon)
    t["ID"] = [f"{field}_{i:04d}" for i in range(n)]
    t["FIELD"] = [field] * n
    t["GLON"], t["GLAT"] = np.asarray(glon, float), np.asarray(glat, float)
    t["WIDTH_ARCMIN"] = np.asarray(size_arcmin, float)
    t["HEIGHT_ARCMIN"] = np.asarray(size_arcmin, float)
    t["SIZE_ARCMIN"] = np.asarray(size_arcmin, float)
    t["SCORE"] = np.asarray(score, float)
    return t


def test_cross_field_nms_keeps_one_of_a_bubble_seen_twice():
    from skydetect.bubbles.survey import merge_fields

    # fields at l = 15 and l = 18 overlap around l = 16.5; a 2' bubble at l = 16.52 is seen by
    # both (centres 0.2' apart), a second one only by the first, a third 3' from the first
    a = _detections(
        "01500+0000", [16.52, 15.0, 16.52 + 3 / 60], [0.1, 0.2, 0.1], [2, 1, 2], [0.9, 0.8, 0.7]
    )
    b = _detections("01800+0000", [16.52 + 0.2 / 60], [0.1 + 0.1 / 60], [2.1], [0.95])
    merged = merge_fields([a, b], merge_iou=0.3)
    assert len(merged) == 3
    near = np.abs(merged["GLON"] - 16.52) < 1 / 60
    assert near.sum() == 1 and merged["FIELD"][near][0] == "01800+0000"  # the better score
    # across l = 0: 359.99 and 0.01 are 1.2' apart, the same bubble of 3'
    c = _detections("00000+0000", [0.01], [0.0], [3], [0.6])
    d = _detections("35700+0000", [359.99], [0.0], [3], [0.5])
    assert len(merge_fields([c, d])) == 1
    assert len(merge_fields([a])) == 3  # nothing removed within one field's distinct bubbles


def test_survey_fields_and_catalogue():
    from skydetect.bubbles.survey import survey_catalog, survey_counts, survey_longitudes

    lons = survey_longitudes(None)
    assert len(lons) == 45 and 0.0 in lons and 66.0 in lons and 294.0 in lons
    assert 69.0 not in lons and survey_longitudes([15, 18]) == [15.0, 18.0]
    merged = _detections("01500+0000", [15.0, 15.5], [0.0, 0.3], [2.6, 1.3], [0.9, 0.6])
    mwp = one_bubble(15.0 + 0.5 / 60, 0.0, maj=1.0)
    t = survey_catalog(merged, mwp, box_scale=1.3)
    assert list(t["STATUS"]) == ["KNOWN", "NEW"] and t["MWP"][0] == "TEST1"
    assert t["separation"][0] == pytest.approx(0.5, abs=1e-3)
    assert t["MajAxis"][0] == pytest.approx(1.0) and str(t["MajAxis"].unit) == "arcmin"
    counts = survey_counts(t, mwp, ["01500+0000"], {"01500+0000": (13.5, 16.5)})
    assert list(counts[-1]["detected", "known", "new", "mwp_in_fields"]) == [2, 1, 1, 1]
