"""The retrospective active-learning simulation, on real features of OQMD-ICSD records.

The ``table`` fixture's target is the OQMD band gap, not SAMS (tests/oqmd_table.py): these tests
check the mechanics, the study itself runs on the paper labels (scripts/label_studies.py).
"""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from vtc_fw.ml.active_learning import STRATEGIES, pick, simulate, tree_spread

COLUMNS = ["IAMS", "density", "spacegroup_norm", "en_mean", "en_std"]


@pytest.fixture(scope="module")
def frame(table):
    return table.dropna(subset=[*COLUMNS, "sams"]).reset_index(drop=True)


def test_every_strategy_starts_from_the_same_labels_and_grows_by_the_batch(frame):
    points = simulate(frame, COLUMNS, seeds=(0, 1), start=20, batch=40)
    by_strategy = {
        s: sorted((p for p in points if p.strategy == s), key=lambda p: p.n_labels)
        for s in STRATEGIES
    }
    first = {curve[0].r2_mean for curve in by_strategy.values()}
    assert len(first) == 1  # same seed set, same forest, same test set
    for curve in by_strategy.values():
        sizes = [p.n_labels for p in curve]
        assert sizes[0] == 20 and np.all(np.diff(sizes) == 40)
        assert sizes[-1] > 0.6 * len(frame)


def test_uncertainty_picks_the_largest_tree_spread_and_balanced_spreads_elements(frame):
    forest = RandomForestRegressor(n_estimators=30, random_state=0).fit(
        frame[COLUMNS].head(60), frame["sams"].head(60)
    )
    pool = frame.iloc[60:].reset_index(drop=True)
    spread = tree_spread(forest, pool[COLUMNS].to_numpy())
    rng = np.random.default_rng(0)
    top = pick("uncertainty", forest, pool, COLUMNS, 5, rng)
    assert sorted(spread[top]) == sorted(np.sort(spread)[-5:])
    balanced = pick("uncertainty_balanced", forest, pool, COLUMNS, 5, rng)
    elements = pool["element"].to_numpy()[balanced]
    assert len(set(elements)) == min(5, pool["element"].nunique())
    with pytest.raises(ValueError, match="unknown strategy"):
        pick("greedy", forest, pool, COLUMNS, 5, rng)
