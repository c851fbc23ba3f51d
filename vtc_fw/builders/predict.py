"""PredictionBuilder: ``features`` + the latest model → ``predictions``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from maggma.core import Builder, Store

from vtc_fw.builders.incremental import as_utc, chunks, newest_by, query_by_keys, stale_keys
from vtc_fw.builders.train import MODEL_PROPERTIES, latest_model, load_estimator
from vtc_fw.documents.base import BuilderMeta, ErrorInfo, State
from vtc_fw.documents.model import ANY_LABELS, AnyLabels
from vtc_fw.documents.prediction import PredictionDocument
from vtc_fw.errors import Reason
from vtc_fw.keys import prediction_key
from vtc_fw.ml.protocol import tree_predictions
from vtc_fw.settings import FeatureSet, ModelTarget


class PredictionBuilder(Builder):
    """Predict SAMS, with the spread across trees, for every featurized record.

    Uses the current model of the configuration (the newest successful one with that feature
    set, target and label mix; None: any feature set or target) unless ``model_id`` is given.
    Predictions are keyed by ``"{record_key}:{model_id}"``: a new model writes new documents and
    older ones stay. Incremental per model: a record is predicted again only when its features
    changed. Records with null features get a ``state="failed"`` document saying which are
    missing.

    Args:
        features: Source store of feature documents (key ``record_key``).
        models: Source store of model documents (key ``model_id``).
        model_blobs: Source store of model blobs (:mod:`vtc_fw.ml.forest_format`).
        predictions: Target store (key ``prediction_key``).
        model_id: A specific model to predict with (default: the newest).
        chunk_size: Records predicted per vectorized call.
        feature_set: Only a model with these inputs (None: any).
        target: Only a model of this target (None: any).
        cheap_preset: Only a model trained with the calibrated labels of this preset (None:
            only one of paper labels alone; ``ANY_LABELS``: any).
    """

    def __init__(
        self,
        features: Store,
        models: Store,
        model_blobs: Store,
        predictions: Store,
        model_id: str | None = None,
        chunk_size: int = 5000,
        feature_set: FeatureSet | str | None = None,
        target: ModelTarget | str | None = None,
        cheap_preset: str | AnyLabels | None = ANY_LABELS,
        **kwargs: Any,
    ) -> None:
        self.features = features
        self.models = models
        self.model_blobs = model_blobs
        self.predictions = predictions
        self.model_id = model_id
        self.feature_set = None if feature_set is None else FeatureSet(feature_set)
        self.target = None if target is None else ModelTarget(target)
        self.cheap_preset = cheap_preset
        self.documents_written = 0
        super().__init__(
            sources=[features, models, model_blobs],
            targets=[predictions],
            chunk_size=chunk_size,
            **kwargs,
        )

    def ensure_indexes(self) -> None:
        """Indexes of the incremental queries and of screening."""
        fields = ("prediction_key", "record_key", "model_id", "sams", "sams_std", "element")
        for field in (*fields, "in_domain"):
            self.predictions.ensure_index(field)

    def get_items(self) -> Iterator[dict[str, Any]]:
        """Chunks of changed feature documents, each with the model that predicts them."""
        model = self._model()
        if model is None:
            self.logger.info("no model: nothing to predict")
            return
        self.ensure_indexes()
        source = newest_by(self.features, "record_key", {"state": "successful"})
        target = newest_by(self.predictions, "record_key", {"model_id": model["model_id"]})
        keys = stale_keys(source, target)
        self.logger.info(f"{len(keys)} records to predict with model {model['model_id'][:12]}")
        if not keys:
            return
        estimator = load_estimator(self.model_blobs, model["model_id"])
        self.total = len(keys)
        for chunk in chunks(keys, self.chunk_size):
            documents = list(query_by_keys(self.features, "record_key", chunk))
            yield {"model": model, "estimator": estimator, "features": documents}

    def process_item(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        """Prediction documents of one chunk (pure, no database)."""
        model, documents = item["model"], item["features"]
        columns, exponent = model["feature_columns"], model.get("exponent")
        meta = BuilderMeta(builder=type(self).__name__, parameters={"model_id": model["model_id"]})
        rows = [feature_vector(document, columns, exponent) for document in documents]
        complete = [i for i, row in enumerate(rows) if not np.isnan(row).any()]
        per_tree = (
            tree_predictions(item["estimator"], np.array([rows[i] for i in complete]))
            if complete
            else np.empty((0, 0))
        )
        predicted = dict(zip(complete, per_tree.T, strict=True)) if complete else {}
        return [
            _prediction(document, model, exponent, predicted.get(i), missing, meta).model_dump()
            for i, (document, row) in enumerate(zip(documents, rows, strict=True))
            for missing in [[c for c, value in zip(columns, row, strict=True) if np.isnan(value)]]
        ]

    def update_targets(self, items: list[list[dict[str, Any]]]) -> None:
        """Upsert the predictions by prediction key."""
        documents = [document for chunk in items for document in chunk]
        if documents:
            self.predictions.update(documents, key="prediction_key")
            self.documents_written += len(documents)

    def _model(self) -> dict[str, Any] | None:
        if self.model_id is None:
            return latest_model(self.models, self.feature_set, self.target, self.cheap_preset)
        return self.models.query_one(
            {"model_id": self.model_id, "state": "successful"}, properties=MODEL_PROPERTIES
        )


def feature_vector(
    document: dict[str, Any], columns: list[str], exponent: int | None
) -> np.ndarray:
    """A record's model input, NaN where null.

    The exponent-dependent sums are taken at the model's exponent (from the document's sweep
    when it was featurized at another one); the crystal sums, which only the sweep holds,
    always from the sweep.
    """
    sweep = document.get("sweep", {}).get(str(exponent), {})
    use_sweep = exponent is not None and document.get("exponent") != exponent and sweep
    values = [
        sweep.get(c) if c in sweep and (use_sweep or c not in document) else document.get(c)
        for c in columns
    ]
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _prediction(
    document: dict[str, Any],
    model: dict[str, Any],
    exponent: int | None,
    per_tree: np.ndarray | None,
    missing: list[str],
    meta: BuilderMeta,
) -> PredictionDocument:
    return PredictionDocument(
        prediction_key=prediction_key(document["record_key"], model["model_id"]),
        record_key=document["record_key"],
        structure_id=document["structure_id"],
        element=document.get("element"),
        formula=document.get("formula"),
        model_id=model["model_id"],
        model_trained=as_utc(model["last_updated"]),
        exponent=exponent,
        target=model.get("target") or ModelTarget.SAMS,
        feature_set=model.get("feature_set") or FeatureSet.PAPER,
        state=State.SUCCESSFUL if per_tree is not None else State.FAILED,
        error=None if per_tree is not None else _null_features(missing),
        sams=float(per_tree.mean()) if per_tree is not None else None,
        sams_std=float(per_tree.std()) if per_tree is not None else None,
        in_domain=bool(document.get("in_domain", False)),
        last_updated=as_utc(document["last_updated"]),
        builder_meta=meta,
    )


def _null_features(missing: list[str]) -> ErrorInfo:
    return ErrorInfo(
        type="NullFeatures",
        reason=Reason.NULL_FEATURES,
        message=f"null features: {', '.join(missing)}",
    )
