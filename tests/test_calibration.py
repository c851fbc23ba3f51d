"""Calibration of cheap labels, on our own committed labels.

The labels are recorded outputs of our real FEFF runs: "paper" SAMS from
data/reference_paper.jsonl.gz and "screen" SAMS from data/screen/batch_001.jsonl.gz (feff10-rs
0.2.4, this project's engine); the features are vtc-fw's own, computed here.
"""

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vtc_fw.ml.calibration import (
    CHEAP_COLUMN,
    METHODS,
    calibrated,
    fit_calibration,
    paired_table,
    score_calibrations,
)
from vtc_fw.ml.table import at_exponent
from vtc_fw.science.features import featurize_record, moments_by_exponent, sweep_columns
from vtc_fw.science.records import make_records
from vtc_fw.sources.oqmd import iter_oqmd_icsd

DATA = Path(__file__).resolve().parents[1] / "data"
N_PAIRS = 40


def sams_by_record(path: Path) -> dict[str, float]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        tasks = [json.loads(line) for line in handle]
    return {t["record_key"]: t["sams"] for t in tasks if t["state"] == "successful"}


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    paper = sams_by_record(DATA / "reference_paper.jsonl.gz")
    cheap = sams_by_record(DATA / "screen" / "batch_001.jsonl.gz")
    keys = sorted(set(paper) & set(cheap))[:N_PAIRS]
    wanted = {key.rpartition(":")[0]: key.rpartition(":")[2] for key in keys}
    rows = []
    for entry in iter_oqmd_icsd():
        if entry.structure_id in wanted:
            record = make_records(entry, elements=[wanted[entry.structure_id]])[0]
            row = featurize_record(record).as_dict()
            row.update(sweep_columns(moments_by_exponent(record, (9,))))
            rows.append(row | {"key": row.pop("record_key")})
    rows = at_exponent(pd.DataFrame(rows), 9).to_dict("records")
    return paired_table(rows, paper, cheap)


def test_paired_table_holds_both_labels(pairs):
    assert len(pairs) >= 30
    assert not pairs[[CHEAP_COLUMN, "sams", "QAMS_crystal"]].isna().any().any()


def test_raw_error_is_the_plain_difference_and_every_method_is_scored(pairs):
    scores = score_calibrations(pairs, seed=0, cv=5, repeats=2)
    by_method = {s.method: s for s in scores.scores}
    assert list(by_method) == list(METHODS)
    direct = np.abs(pairs["sams"] - pairs[CHEAP_COLUMN]).mean()
    assert by_method["raw"].mae == pytest.approx(direct)
    assert scores.best == min(scores.scores, key=lambda s: s.mae).method


def test_residual_forest_adds_its_correction_to_the_cheap_label(pairs):
    shifted = pairs.assign(sams=pairs[CHEAP_COLUMN] + 0.05)
    estimator = fit_calibration("forest_residual", shifted, seed=0)
    np.testing.assert_allclose(calibrated("forest_residual", estimator, shifted), shifted["sams"])


def test_too_few_pairs_and_unknown_methods_are_refused(pairs):
    with pytest.raises(ValueError, match="at least 10"):
        score_calibrations(pairs.head(5))
    with pytest.raises(ValueError, match="unknown calibration method"):
        fit_calibration("spline", pairs, seed=0)
