"""The model report from the database: figures and the metrics table of a trained model."""

from pathlib import Path
from typing import Any

from vtc_fw.builders.train import latest_model as newest_model_in
from vtc_fw.db.config import DbConfig
from vtc_fw.documents.model import ANY_LABELS, AnyLabels
from vtc_fw.ml.plots import write_report
from vtc_fw.settings import FeatureSet, ModelTarget


def latest_model(
    config: DbConfig,
    model_id: str | None = None,
    feature_set: FeatureSet | str | None = None,
    target: ModelTarget | str | None = None,
    cheap_preset: str | AnyLabels | None = ANY_LABELS,
) -> dict[str, Any] | None:
    """The whole current ``models`` document of a configuration (or the one with ``model_id``).

    The current model is the newest successful one with ``feature_set`` and ``target`` (None:
    any) and ``cheap_preset`` (None: paper labels only; ``ANY_LABELS``: any label mix);
    ``feature_set`` and ``target`` are filled in for documents older than them.
    """
    models = config.store("models")
    models.connect()
    try:
        if model_id is None:
            newest = newest_model_in(models, feature_set, target, cheap_preset)
            if newest is None:
                return None
            model_id = newest["model_id"]
        model = models.query_one({"model_id": model_id, "state": "successful"})
    finally:
        models.close()
    if model is not None:
        model.setdefault("feature_set", FeatureSet.PAPER.value)
        model.setdefault("target", ModelTarget.SAMS.value)
    return model


def write_model_report(config: DbConfig, out_dir: Path, model: dict[str, Any]) -> list[Path]:
    """Write the figures and ``metrics.md`` of ``model`` to ``out_dir``.

    The distributions show the labelled records (the model's target from ``xes``; QAMS of the
    records that have it, or of every record when none has).
    """
    target = str(model.get("target") or ModelTarget.SAMS.value)
    xes, features = config.store("xes"), config.store("features")
    xes.connect()
    features.connect()
    try:
        xes_rows = [
            {**row, "sams": row.get(target)}
            for row in xes.query(
                {"state": "successful", target: {"$ne": None}},
                properties=["element", target, "record_key"],
            )
        ]
        feature_rows = list(
            features.query({"state": "successful"}, properties=["element", "QAMS", "record_key"])
        )
    finally:
        xes.close()
        features.close()
    labelled = {row["record_key"] for row in xes_rows}
    feature_rows = [row for row in feature_rows if row["record_key"] in labelled] or feature_rows
    return write_report(model, xes_rows, feature_rows, out_dir, ModelTarget(target).label)
