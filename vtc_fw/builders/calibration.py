"""CalibrationBuilder: paired cheap and paper tasks + ``features`` → ``calibrations``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pandas as pd
from maggma.core import Builder, Store

from vtc_fw.builders.train import blob_document, serialize_estimator
from vtc_fw.documents.base import BuilderMeta
from vtc_fw.documents.calibration import CalibrationDocument
from vtc_fw.documents.features import FeatureDocument
from vtc_fw.documents.xes import NO_SCF_RUNG
from vtc_fw.ml.calibration import (
    calibration_inputs,
    fit_calibration,
    paired_table,
    score_calibrations,
    too_few_pairs,
)
from vtc_fw.ml.table import at_exponent
from vtc_fw.settings import DEFAULT_CHEAP_PRESET

STORABLE_METHODS = ("raw", "forest", "forest_residual")
"""Methods whose fitted form the model blob format holds (the linear fit is only scored)."""
CALIBRATION_EXPONENT = 9
"""Exponent of the moment sums the calibration reads (the reproduced model's)."""


class CalibrationBuilder(Builder):
    """Fit the calibration of cheap labels whenever the paired set changed.

    The paired set is every record with a successful, self-consistent ``paper_preset`` task
    and a successful ``cheap_preset`` task, and successful features. When its record keys
    differ from those of the newest calibration (new pairs: the set grew), every method of
    :mod:`vtc_fw.ml.calibration` is scored by repeated K-fold on it and the best of those that
    can be stored as data (:data:`STORABLE_METHODS`: no estimator, or a forest in the safe
    format of :mod:`vtc_fw.ml.forest_format`) is fitted on all of it. With fewer pairs than the
    K-fold scores need (:func:`~vtc_fw.ml.calibration.too_few_pairs`: none in a database without
    cheap tasks, or the first few) nothing is written and the build goes on.

    Args:
        tasks: Source store of task documents.
        features: Source store of feature documents.
        calibrations: Target store (key ``calibration_id``).
        model_blobs: Target store of estimator bytes (shared with the models).
        cheap_preset: Preset of the cheap labels.
        paper_preset: Preset of the labels predicted.
        repeats: Repeats of the 5-fold CV that scores the methods.
        seed: Seed of the folds and the forests.
    """

    def __init__(
        self,
        tasks: Store,
        features: Store,
        calibrations: Store,
        model_blobs: Store,
        cheap_preset: str = DEFAULT_CHEAP_PRESET,
        paper_preset: str = "paper",
        repeats: int = 5,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        self.tasks = tasks
        self.features = features
        self.calibrations = calibrations
        self.model_blobs = model_blobs
        self.cheap_preset = cheap_preset
        self.paper_preset = paper_preset
        self.repeats = repeats
        self.seed = seed
        self.documents_written = 0
        super().__init__(sources=[tasks, features], targets=[calibrations, model_blobs], **kwargs)

    def ensure_indexes(self) -> None:
        """Indexes of the task query and of the newest calibration."""
        for field in ("preset", "state", "record_key"):
            self.tasks.ensure_index(field)
        for field in ("calibration_id", "last_updated"):
            self.calibrations.ensure_index(field)

    def get_items(self) -> Iterator[dict[str, Any]]:
        """One item (the paired labels and their features) when the paired set changed."""
        self.ensure_indexes()
        paper = self._labels(self.paper_preset)
        cheap = self._labels(self.cheap_preset)
        keys = sorted(set(paper) & set(cheap))
        if (reason := too_few_pairs(len(keys))) is not None:
            self.logger.info(f"no calibration of {self.cheap_preset} yet: {reason}")
            return
        newest = next(
            iter(
                self.calibrations.query(
                    sort={"last_updated": -1}, limit=1, properties=["pairs_hash"]
                )
            ),
            None,
        )
        if newest is not None and newest["pairs_hash"] == pairs_hash(keys):
            self.logger.info(f"calibration up to date ({len(keys)} pairs)")
            return
        features = list(self.features.query({"record_key": {"$in": keys}, "state": "successful"}))
        self.total = 1
        yield {
            "paper": {k: paper[k][0] for k in keys},
            "cheap": {k: cheap[k][0] for k in keys},
            "features": features,
            "sources_last_updated": max([paper[k][1] for k in keys] + [cheap[k][1] for k in keys]),
        }

    def _labels(self, preset: str) -> dict[str, tuple[float, datetime]]:
        """Record key → (SAMS, last_updated) of the successful self-consistent tasks."""
        found = {}
        properties = ["record_key", "sams", "sites.rung", "last_updated"]
        for task in self.tasks.query({"preset": preset, "state": "successful"}, properties):
            rungs = [site.get("rung") for site in task.get("sites") or []]
            if NO_SCF_RUNG not in rungs and task.get("sams") is not None:
                found[task["record_key"]] = (float(task["sams"]), task["last_updated"])
        return found

    def process_item(self, item: dict[str, Any]) -> dict[str, Any]:
        """Score every method, fit the best on all pairs (pure, no database)."""
        rows = [FeatureDocument.model_validate(d).training_row() for d in item["features"]]
        table = at_exponent(pd.DataFrame(rows), CALIBRATION_EXPONENT).to_dict("records")
        frame = paired_table(table, item["paper"], item["cheap"])
        if (reason := too_few_pairs(len(frame))) is not None:  # pairs without features
            self.logger.info(f"no calibration of {self.cheap_preset} yet: {reason}")
            return {}
        scores = score_calibrations(frame, seed=self.seed, repeats=self.repeats)
        best = min(
            (score for score in scores.scores if score.method in STORABLE_METHODS),
            key=lambda score: score.mae,
        )
        estimator = fit_calibration(best.method, frame, self.seed)
        if estimator is None:  # "raw": nothing to store, the id names the pairs
            calibration_id, data = f"raw-{pairs_hash(frame['key'])}", None
        else:
            calibration_id, data = serialize_estimator(estimator, calibration_inputs(best.method))
        document = CalibrationDocument(
            calibration_id=calibration_id,
            method=best.method,
            cheap_preset=self.cheap_preset,
            paper_preset=self.paper_preset,
            exponent=CALIBRATION_EXPONENT,
            pairs_hash=pairs_hash(sorted(item["paper"])),
            scores=scores,
            cv_mae=best.mae,
            sources_last_updated=item["sources_last_updated"],
            builder_meta=BuilderMeta(builder=type(self).__name__, parameters=self._parameters()),
        )
        result: dict[str, Any] = {"calibration": document.model_dump()}
        if data is not None:
            result["blob"] = blob_document(calibration_id, data, document.last_updated)
        return result

    def update_targets(self, items: list[dict[str, Any]]) -> None:
        """Store the blob first, then the document that points to it."""
        for item in items:
            if "calibration" not in item:
                continue
            if "blob" in item:
                self.model_blobs.update([item["blob"]], key="model_id")
            self.calibrations.update([item["calibration"]], key="calibration_id")
            self.documents_written += 1

    def _parameters(self) -> dict[str, Any]:
        return {
            "cheap_preset": self.cheap_preset,
            "paper_preset": self.paper_preset,
            "repeats": self.repeats,
            "seed": self.seed,
        }


def pairs_hash(keys: Any) -> str:
    """SHA-256 of the sorted record keys of a paired set."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()
