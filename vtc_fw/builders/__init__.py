"""maggma builders: tasks → xes, structures → features, features + xes → models → predictions.

:func:`nightly_builders` is the pipeline that ``mrun builders/nightly.py`` and
``vtc-fw build`` both run; :func:`run_builders` runs builders serially in this process and
says how many documents each wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from maggma.core import Builder

from vtc_fw.builders.features import FeatureBuilder
from vtc_fw.builders.predict import PredictionBuilder
from vtc_fw.builders.train import TrainBuilder
from vtc_fw.builders.xes import XesBuilder

if TYPE_CHECKING:
    from vtc_fw.db.config import DbConfig

__all__ = [
    "FeatureBuilder",
    "PredictionBuilder",
    "TrainBuilder",
    "XesBuilder",
    "nightly_builders",
    "run_builders",
]


def nightly_builders(
    config: DbConfig,
    *,
    preset: str = "paper",
    seed: int = 0,
    n_iter: int = 100,
    n_jobs: int | None = None,
    **train_options: Any,
) -> list[Builder]:
    """The nightly pipeline on the configured database, in dependency order.

    Args:
        config: Where the collections are (:class:`vtc_fw.db.config.DbConfig`).
        preset: FEFF preset whose tasks become the training targets.
        seed: Seed of the training protocol.
        n_iter: Draws of the randomized search (paper: 100).
        n_jobs: Parallel jobs for training (None: 1).
        train_options: Further :class:`TrainBuilder` arguments (cv, search_space, ...).
    """
    return [
        XesBuilder(config.store("tasks"), config.store("xes"), preset=preset),
        FeatureBuilder(config.store("structures"), config.store("features")),
        TrainBuilder(
            config.store("features"),
            config.store("xes"),
            config.store("models"),
            config.gridfs_store("model_blobs"),
            seed=seed,
            n_iter=n_iter,
            n_jobs=n_jobs,
            **train_options,
        ),
        PredictionBuilder(
            config.store("features"),
            config.store("models"),
            config.gridfs_store("model_blobs"),
            config.store("predictions"),
        ),
    ]


def run_builders(builders: Sequence[Builder]) -> dict[str, int]:
    """Run builders one after the other (get_items → process_item → update_targets).

    Returns:
        ``{builder class name: documents written}``.
    """
    written: dict[str, int] = {}
    for builder in builders:
        builder.connect()
        try:
            batch: list[Any] = []
            for item in builder.get_items():
                batch.append(builder.process_item(item))
                if len(batch) >= builder.chunk_size:
                    builder.update_targets(batch)
                    batch = []
            builder.update_targets(batch)
        finally:
            builder.finalize()
        name = type(builder).__name__
        written[name] = written.get(name, 0) + getattr(builder, "documents_written", 0)
        logging.getLogger(__name__).info(f"{name}: {written[name]} documents written")
    return written
