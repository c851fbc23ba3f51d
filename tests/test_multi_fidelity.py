"""Multi-fidelity training: cheap labels never enter a test set, held-out records never leak.

Rows are real features of OQMD-ICSD records (tests/oqmd_table.py); their ``sams`` is the OQMD
band gap, not SAMS, and the "cheap" label is that band gap rounded to 0.5 eV, a stand-in with
a known relation to the target: these tests check the bookkeeping, not the science.
"""

import numpy as np
import pytest

from vtc_fw.ml.calibration import CHEAP_COLUMN, FEATURES
from vtc_fw.ml.multi_fidelity import (
    CHEAP,
    FIDELITY_COLUMN,
    PAPER,
    held_out_paper,
    label_swap_scores,
    learning_curve,
    paper_size_curve,
    training_rows,
)

COLUMNS = ["IAMS", "density", "spacegroup_norm", "en_mean", "en_std"]


@pytest.fixture(scope="module")
def rows(table):
    frame = table.copy()
    for name in FEATURES:
        if name not in frame and name != CHEAP_COLUMN:
            frame[name] = frame[name.removesuffix("_crystal")]
    frame[CHEAP_COLUMN] = (frame["sams"] * 2).round() / 2
    return frame.dropna(subset=[*FEATURES, "sams"]).reset_index(drop=True)


def test_a_cheap_row_is_refused_as_a_test_row(rows):
    frame = rows.assign(**{FIDELITY_COLUMN: PAPER})
    frame.loc[3, FIDELITY_COLUMN] = CHEAP
    assert len(held_out_paper(frame, np.array([0, 1, 2]))) == 3
    with pytest.raises(ValueError, match="evaluation is on paper only"):
        held_out_paper(frame, np.array([2, 3]))


def test_training_rows_leave_out_held_out_records_and_mark_their_fidelity(rows):
    paper, cheap = rows.iloc[:60], rows.iloc[60:]
    held_out = set(cheap["key"].head(10))
    train = training_rows(paper, cheap, held_out, "linear", seed=0)
    assert not set(train["key"]) & held_out
    assert (train[FIDELITY_COLUMN] == PAPER).sum() == 60
    assert (train[FIDELITY_COLUMN] == CHEAP).sum() == len(cheap) - 10
    # the linear calibration of a cheap label that is the target rounded stays close to it
    calibrated = train[train[FIDELITY_COLUMN] == CHEAP].set_index("key")["sams"]
    truth = cheap.set_index("key").loc[calibrated.index, "sams"]
    assert np.abs(calibrated - truth).mean() < 0.5


def test_learning_curve_is_paired_and_starts_from_paper_alone(rows):
    paper, cheap = rows.iloc[:80], rows.iloc[80:]
    points = learning_curve(paper, cheap, COLUMNS, [0, 40], method="linear", repeats=1)
    assert [p.n_cheap for p in points] == [0, 40]
    assert points[0].delta_mean == 0.0 and points[0].delta_se == 0.0
    assert points[1].r2_mean == pytest.approx(points[0].r2_mean + points[1].delta_mean)


def test_label_swap_scores_paper_labels_swapped_for_themselves_exactly_and_noise_worse(rows):
    paper = rows.iloc[:100]
    same = dict(zip(paper["key"], paper["sams"], strict=True))
    shuffled = dict(
        zip(paper["key"], np.random.default_rng(0).permutation(paper["sams"]), strict=True)
    )
    half = dict(list(shuffled.items())[:50])
    points = label_swap_scores(paper, {"same": same, "noise": half}, COLUMNS, repeats=1)
    by_name = {p.name: p for p in points}
    assert [p.name for p in points] == [PAPER, "same", "noise"]
    assert by_name["same"].n == 100 and by_name["noise"].n == 50
    assert by_name["same"].delta_mean == 0.0 and by_name["same"].r2_mean == by_name[PAPER].r2_mean
    assert by_name["noise"].delta_mean < -0.05


def test_paper_size_curve_is_paired_on_the_full_training_folds(rows):
    paper = rows.iloc[:100]
    points = paper_size_curve(paper, COLUMNS, (0.2, 1.0), repeats=2)
    assert [p.n for p in points] == [16, 80]
    assert points[-1].delta_mean == 0.0
    assert points[0].r2_mean < points[-1].r2_mean
