"""Retrospective pool-based active learning on labelled records (pure, no database).

Does picking the records the forest is least sure about (``vtc-fw suggest``: the largest spread
of the trees' predictions) reach a given R² with fewer FEFF labels than picking at random? The
simulation hides the labels of a pool, starts from a random seed set, and in each round labels
``batch`` records chosen by the strategy, refits and scores on a held-out test set that is
never in the pool. Repeated over seeds, the curves say which strategy to use.

Strategies:

* ``random``: uniform over the unlabelled pool.
* ``uncertainty``: the largest standard deviation of the trees' predictions (``suggest``).
* ``uncertainty_balanced``: the same, but round-robin over the absorbing elements, so a batch
  cannot fill with one element whose trees disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split

from vtc_fw.ml.calibration import FOREST_PARAMS

STRATEGIES = ("random", "uncertainty", "uncertainty_balanced")


class CurvePoint(BaseModel):
    """Held-out R² of one strategy after a number of labels, over the seeds."""

    strategy: str = Field(description="One of STRATEGIES.")
    n_labels: int = Field(description="Labelled records the forest was fit on.")
    r2_mean: float = Field(description="Mean held-out R² over the seeds.")
    r2_std: float = Field(description="Standard deviation over the seeds.")


def tree_spread(forest: RandomForestRegressor, x: np.ndarray) -> np.ndarray:
    """Standard deviation of the trees' predictions: the uncertainty ``suggest`` ranks by."""
    return np.std([tree.predict(x) for tree in forest.estimators_], axis=0)


def pick(
    strategy: str,
    forest: RandomForestRegressor,
    pool: pd.DataFrame,
    columns: Sequence[str],
    batch: int,
    rng: np.random.Generator,
) -> list[int]:
    """Positional indices of ``batch`` pool rows chosen by ``strategy``."""
    if strategy == "random":
        return list(rng.choice(len(pool), size=batch, replace=False))
    spread = tree_spread(forest, pool[list(columns)].to_numpy(dtype=float))
    order = np.argsort(-spread, kind="stable")
    if strategy == "uncertainty":
        return list(order[:batch])
    if strategy == "uncertainty_balanced":
        return _round_robin(order, pool["element"].to_numpy(), batch)
    raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")


def _round_robin(order: np.ndarray, elements: np.ndarray, batch: int) -> list[int]:
    """The most uncertain rows, taking one per element in turn."""
    queues = {element: [i for i in order if elements[i] == element] for element in set(elements)}
    chosen: list[int] = []
    while len(chosen) < batch and any(queues.values()):
        for element in sorted(queues, key=lambda e: -len(queues[e])):
            if queues[element] and len(chosen) < batch:
                chosen.append(queues[element].pop(0))
    return chosen


def simulate(
    frame: pd.DataFrame,
    columns: Sequence[str],
    *,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    start: int = 50,
    batch: int = 25,
    test_fraction: float = 0.2,
    strategies: Sequence[str] = STRATEGIES,
) -> list[CurvePoint]:
    """Learning curves of every strategy, averaged over seeds.

    Args:
        frame: Labelled rows with ``columns``, ``element`` and ``sams``.
        columns: Model inputs.
        seeds: Each seed draws its own test set, seed set and forests.
        start: Random labels before the first round.
        batch: Labels added per round.
        test_fraction: Held-out share, stratified by element, never in the pool.
        strategies: Names from :data:`STRATEGIES`.
    """
    scores: dict[tuple[str, int], list[float]] = {}
    for seed in seeds:
        rest, test = train_test_split(
            frame, test_size=test_fraction, stratify=frame["element"], random_state=seed
        )
        for strategy in strategies:
            for n_labels, r2 in _curve(strategy, rest, test, columns, seed, start, batch):
                scores.setdefault((strategy, n_labels), []).append(r2)
    return [
        CurvePoint(
            strategy=strategy,
            n_labels=n_labels,
            r2_mean=float(np.mean(values)),
            r2_std=float(np.std(values)),
        )
        for (strategy, n_labels), values in scores.items()
        if len(values) == len(seeds)
    ]


def _curve(
    strategy: str,
    rest: pd.DataFrame,
    test: pd.DataFrame,
    columns: Sequence[str],
    seed: int,
    start: int,
    batch: int,
) -> list[tuple[int, float]]:
    rng = np.random.default_rng(seed)
    labelled = rest.iloc[rng.choice(len(rest), size=start, replace=False)]
    pool = rest.drop(labelled.index)
    curve = []
    while True:
        forest = RandomForestRegressor(random_state=seed, n_jobs=1, **FOREST_PARAMS)
        forest.fit(labelled[list(columns)].to_numpy(dtype=float), labelled["sams"])
        predicted = forest.predict(test[list(columns)].to_numpy(dtype=float))
        curve.append((len(labelled), float(r2_score(test["sams"], predicted))))
        if len(pool) < batch:
            return curve
        chosen = pool.iloc[pick(strategy, forest, pool, columns, batch, rng)]
        labelled = pd.concat([labelled, chosen])
        pool = pool.drop(chosen.index)
