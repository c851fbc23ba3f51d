"""The model report from the database: figures and the metrics table of a trained model."""

from pathlib import Path
from typing import Any

from vtc_fw.builders.train import latest_model as newest_model_in
from vtc_fw.db.config import DbConfig
from vtc_fw.ml.plots import write_report


def latest_model(config: DbConfig, model_id: str | None = None) -> dict[str, Any] | None:
    """The whole newest successful ``models`` document (or the one with ``model_id``)."""
    models = config.store("models")
    models.connect()
    try:
        if model_id is None:
            newest = newest_model_in(models)
            if newest is None:
                return None
            model_id = newest["model_id"]
        return models.query_one({"model_id": model_id, "state": "successful"})
    finally:
        models.close()


def write_model_report(config: DbConfig, out_dir: Path, model: dict[str, Any]) -> list[Path]:
    """Write the figures and ``metrics.md`` of ``model`` to ``out_dir``.

    The distributions show the labelled records (SAMS from ``xes``; QAMS of the records that
    have a SAMS, or of every record when none has).
    """
    xes, features = config.store("xes"), config.store("features")
    xes.connect()
    features.connect()
    try:
        xes_rows = list(
            xes.query({"state": "successful"}, properties=["element", "sams", "record_key"])
        )
        feature_rows = list(
            features.query({"state": "successful"}, properties=["element", "QAMS", "record_key"])
        )
    finally:
        xes.close()
        features.close()
    labelled = {row["record_key"] for row in xes_rows}
    feature_rows = [row for row in feature_rows if row["record_key"] in labelled] or feature_rows
    return write_report(model, xes_rows, feature_rows, out_dir)
