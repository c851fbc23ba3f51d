"""maggma builders: tasks → xes, structures → features, features + xes → models → predictions.

:func:`nightly_builders` is the pipeline that ``mrun builders/nightly.py`` and
``vtc-fw build`` both run; :func:`run_builders` runs builders serially in this process and
says how many documents each wrote.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any

from maggma.core import Builder, Store

from vtc_fw.builders.calibration import CalibrationBuilder
from vtc_fw.builders.features import (
    FeatureBuilder,
    missing_structures_message,
    records_without_structure,
)
from vtc_fw.builders.predict import PredictionBuilder
from vtc_fw.builders.train import TrainBuilder
from vtc_fw.builders.xes import XesBuilder
from vtc_fw.progress import progress_bar
from vtc_fw.settings import (
    DEFAULT_CHEAP_PRESET,
    DEFAULT_FEATURE_SET,
    DEFAULT_PRESET,
    FeatureSet,
    ModelTarget,
    SearchSpace,
)

if TYPE_CHECKING:
    from vtc_fw.db.config import DbConfig

__all__ = [
    "CalibrationBuilder",
    "FeatureBuilder",
    "PredictionBuilder",
    "TrainBuilder",
    "XesBuilder",
    "cheap_xes_store",
    "missing_structures_message",
    "nightly_builders",
    "records_without_structure",
    "run_builders",
]


def nightly_builders(
    config: DbConfig,
    *,
    preset: str = DEFAULT_PRESET,
    seed: int = 0,
    n_iter: int = 100,
    n_jobs: int | None = None,
    feature_set: FeatureSet | str = DEFAULT_FEATURE_SET,
    target: ModelTarget | str = ModelTarget.SAMS,
    search_space: SearchSpace | str | dict[str, list[Any]] | None = None,
    cheap_labels: str | None = None,
    cheap_preset: str = DEFAULT_CHEAP_PRESET,
    **train_options: Any,
) -> list[Builder]:
    """The nightly pipeline on the configured database, in dependency order.

    Args:
        config: Where the collections are (:class:`vtc_fw.db.config.DbConfig`).
        preset: FEFF preset whose tasks become the training targets.
        seed: Seed of the training protocol.
        n_iter: Draws of the randomized search (paper: 100).
        n_jobs: Parallel jobs for training (None: 1).
        feature_set: The model's inputs (default: the crystal sums, the best validated;
            ``"paper"`` reproduces the paper's protocol).
        target: What the model predicts (default: SAMS, the paper's).
        search_space: The model's search (``VTC_FW_SEARCH_SPACE``; None: the feature set's,
            :data:`~vtc_fw.settings.DEFAULT_SEARCH_SPACE`).
        cheap_labels: FEFF preset of calibrated cheap labels to train on beside the labels of
            ``preset`` (default None: those alone). Its xes documents are built into the
            collection ``xes_<cheap_labels>`` (one xes collection holds one preset).
        cheap_preset: FEFF preset of the cheap fidelity the calibration is fitted for
            (``VTC_FW_CHEAP_PRESET``; default "screen_scf").
        train_options: Further :class:`TrainBuilder` arguments (cv, permutation_repeats, ...).

    The prediction builder predicts with the current model of the same feature set, target and
    label mix.
    """
    xes_builders = [XesBuilder(config.store("tasks"), config.store("xes"), preset=preset)]
    if cheap_labels is not None:
        cheap_xes = cheap_xes_store(config, cheap_labels)
        xes_builders.append(XesBuilder(config.store("tasks"), cheap_xes, preset=cheap_labels))
    return [
        *xes_builders,
        FeatureBuilder(config.store("structures"), config.store("features")),
        CalibrationBuilder(
            config.store("tasks"),
            config.store("features"),
            config.store("calibrations"),
            config.gridfs_store("model_blobs"),
            cheap_preset=cheap_preset,
            paper_preset=preset,
        ),
        TrainBuilder(
            config.store("features"),
            config.store("xes"),
            config.store("models"),
            config.gridfs_store("model_blobs"),
            seed=seed,
            n_iter=n_iter,
            n_jobs=n_jobs,
            feature_set=feature_set,
            target=target,
            search_space=search_space,
            preset=preset,
            cheap_preset=cheap_labels,
            cheap_xes=None if cheap_labels is None else cheap_xes_store(config, cheap_labels),
            **train_options,
        ),
        PredictionBuilder(
            config.store("features"),
            config.store("models"),
            config.gridfs_store("model_blobs"),
            config.store("predictions"),
            feature_set=feature_set,
            target=target,
            cheap_preset=cheap_labels,
        ),
    ]


def cheap_xes_store(config: DbConfig, preset: str) -> Store:
    """The xes collection of a cheap preset's labels, ``xes_<preset>`` (key ``record_key``)."""
    return config.store(f"xes_{preset}", key="record_key")


def run_builders(
    builders: Sequence[Builder], show_progress: bool = False, processes: int = 1
) -> dict[str, int]:
    """Run builders one after the other (get_items → process_item → update_targets).

    Args:
        builders: In dependency order.
        show_progress: Print a progress bar per builder (items processed) to stderr.
        processes: Worker processes for builders whose items are independent
            (``parallel_items = True``: process_item is pure, as maggma requires).

    Returns:
        ``{builder class name: documents written}``.
    """
    written: dict[str, int] = {}
    for builder in builders:
        builder.connect()
        try:
            parallel = processes > 1 and getattr(builder, "parallel_items", False)
            with _processed(builder, processes if parallel else 1) as results:
                items = progress_bar(
                    iterable=results,
                    desc=type(builder).__name__,
                    unit="item",
                    mininterval=2,
                    disable=not show_progress,
                )
                batch: list[Any] = []
                for result in items:
                    batch.append(result)
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


_FORKED_BUILDER: Builder | None = None
"""The builder that forked workers run ``process_item`` of (inherited, never pickled)."""


def _ignore_interrupts() -> None:
    """Workers leave Ctrl-C to the parent, which stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _process_in_worker(item: Any) -> Any:
    assert _FORKED_BUILDER is not None, "the builder is set before the workers fork"
    return _FORKED_BUILDER.process_item(item)


@contextmanager
def _processed(builder: Builder, processes: int) -> Iterator[Iterator[Any]]:
    """``process_item`` of every item, in order, in this process or in forked workers."""
    global _FORKED_BUILDER
    if processes <= 1:
        yield map(builder.process_item, builder.get_items())
        return
    _FORKED_BUILDER = builder
    try:
        with get_context("fork").Pool(processes, initializer=_ignore_interrupts) as pool:
            yield pool.imap(_process_in_worker, builder.get_items(), chunksize=16)
    finally:
        _FORKED_BUILDER = None
