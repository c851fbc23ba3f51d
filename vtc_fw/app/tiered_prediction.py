"""Tiered prediction of one structure's SAMS: the model, cheap FEFF + calibration, or full FEFF.

``vtc-fw predict`` answers at the fidelity a user can afford, always with what produced the
answer and its uncertainty:

* ``features``: the current model on the record's features (milliseconds); uncertainty = the
  spread of the trees' predictions.
* ``cheap``: FEFF with the cheap preset (setting ``cheap_preset``, ``VTC_FW_CHEAP_PRESET``;
  "screen_scf", a short 5-iteration SCF, by default; about 14 CPU-s), then the newest
  calibration of that preset (:class:`~vtc_fw.builders.calibration.CalibrationBuilder`);
  uncertainty = the calibration's repeated-CV mean absolute error.
* ``paper``: FEFF with preset "paper", the method itself (minutes); no statistical uncertainty.
"""

from __future__ import annotations

import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vtc_fw.builders.features import SWEEP_EXPONENTS
from vtc_fw.builders.predict import feature_vector
from vtc_fw.builders.train import describe_model, latest_model, load_estimator
from vtc_fw.db.config import DbConfig
from vtc_fw.documents.base import BuilderMeta, utc_now
from vtc_fw.documents.features import FeatureDocument
from vtc_fw.errors import UsageError
from vtc_fw.ml.calibration import CHEAP_COLUMN, calibrated
from vtc_fw.ml.protocol import tree_predictions
from vtc_fw.ml.table import at_exponent
from vtc_fw.science.features import DEFAULT_FEATURE_EXPONENT, featurize_record
from vtc_fw.science.records import Record
from vtc_fw.settings import FeatureSet, ModelTarget, get_settings


class Fidelity(StrEnum):
    """How a prediction is made, cheapest first."""

    FEATURES = "features"
    CHEAP = "cheap"
    PAPER = "paper"


def feature_document(record: Record) -> dict[str, Any]:
    """The record's feature document, as ``FeatureBuilder`` would store it."""
    document = FeatureDocument.from_record(
        record,
        featurize_record(record, DEFAULT_FEATURE_EXPONENT),
        sweep_exponents=SWEEP_EXPONENTS,
        last_updated=utc_now(),
        builder_meta=BuilderMeta(builder="vtc-fw predict"),
    )
    return document.model_dump()


def predict_from_features(
    config: DbConfig, record: Record, feature_set: FeatureSet | None
) -> dict[str, Any]:
    """The current SAMS model's prediction with the trees' spread."""
    models, blobs = config.store("models"), config.gridfs_store("model_blobs")
    models.connect()
    blobs.connect()
    try:
        model = latest_model(models, feature_set, ModelTarget.SAMS)
        if model is None:
            raise UsageError("no trained SAMS model in the database: run `vtc-fw build` first")
        estimator = load_estimator(blobs, model["model_id"])
    finally:
        models.close()
        blobs.close()
    document = feature_document(record)
    vector = feature_vector(document, model["feature_columns"], model.get("exponent"))
    if np.isnan(vector).any():
        raise UsageError(f"{record.key}: null features, the model cannot predict it")
    per_tree = tree_predictions(estimator, vector[None, :])[:, 0]
    return {
        "sams": float(per_tree.mean()),
        "uncertainty": float(per_tree.std()),
        "uncertainty_kind": "standard deviation of the trees' predictions",
        "produced_by": describe_model(model),
        "model_id": model["model_id"],
        "in_domain": document["in_domain"],
    }


def run_feff(record: Record, preset: str, timeout_s: float | None) -> Any:
    """FEFF spectra of the record in a temporary folder."""
    from vtc_fw.feff.engine import compute_record_spectra

    with tempfile.TemporaryDirectory(prefix="vtc-fw-predict-") as scratch:
        return compute_record_spectra(record, preset, Path(scratch) / "run", timeout_s=timeout_s)


def predict_cheap(config: DbConfig, record: Record, timeout_s: float | None) -> dict[str, Any]:
    """Cheap FEFF SAMS calibrated by the newest calibration, its CV MAE as uncertainty."""
    cheap_preset = get_settings().cheap_preset
    calibration = config.collection("calibrations").find_one(
        {"cheap_preset": cheap_preset}, sort=[("last_updated", -1)]
    )
    if calibration is None:
        raise UsageError(
            f"no {cheap_preset} calibration in the database: it needs records with both paper "
            f"and {cheap_preset} tasks (`vtc-fw build` fits it)"
        )
    spectra = run_feff(record, cheap_preset, timeout_s)
    estimator = None
    if calibration["method"] != "raw":
        blobs = config.gridfs_store("model_blobs")
        blobs.connect()
        try:
            estimator = load_estimator(blobs, calibration["calibration_id"])
        finally:
            blobs.close()
    row = FeatureDocument.model_validate(feature_document(record)).training_row()
    frame = at_exponent(pd.DataFrame([row]), calibration["exponent"])
    frame[CHEAP_COLUMN] = spectra.sams
    value = float(calibrated(calibration["method"], estimator, frame)[0])
    return {
        "sams": value,
        "sams_cheap": spectra.sams,
        "uncertainty": calibration["cv_mae"],
        "uncertainty_kind": "repeated-CV mean absolute error of the calibration",
        "produced_by": f"FEFF preset {cheap_preset} + calibration "
        f"{calibration['calibration_id'][:12]} ({calibration['method']}, "
        f"{calibration['scores']['n_pairs']} paired records)",
        "cpu_s": spectra.cpu_s,
    }


def predict_paper(record: Record, timeout_s: float | None) -> dict[str, Any]:
    """The method itself: FEFF with preset "paper"."""
    spectra = run_feff(record, "paper", timeout_s)
    return {
        "sams": spectra.sams,
        "uncertainty": None,
        "uncertainty_kind": "none: the method's own value",
        "produced_by": f"FEFF preset paper ({spectra.feff_version})",
        "cpu_s": spectra.cpu_s,
    }


def predict(
    config: DbConfig | None,
    record: Record,
    fidelity: Fidelity,
    *,
    feature_set: FeatureSet | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """One record's SAMS at the chosen fidelity, with its uncertainty and provenance."""
    answer: dict[str, Any] = {"record_key": record.key, "fidelity": fidelity.value}
    if fidelity is Fidelity.PAPER:
        return answer | predict_paper(record, timeout_s)
    if config is None:
        raise UsageError(f"--fidelity {fidelity.value} needs a database (--db-file)")
    if fidelity is Fidelity.CHEAP:
        return answer | predict_cheap(config, record, timeout_s)
    return answer | predict_from_features(config, record, feature_set)
