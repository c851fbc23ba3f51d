"""TrainBuilder: ``features`` + ``xes`` → ``models`` (+ the estimator in ``model_blobs``)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterator
from typing import Any

from maggma.core import Builder, Store
from sklearn.ensemble import RandomForestRegressor

from vtc_fw.builders.incremental import as_utc, newest
from vtc_fw.documents.base import BuilderMeta
from vtc_fw.documents.features import FeatureDocument
from vtc_fw.documents.model import FailedModelDocument, ModelDocument
from vtc_fw.errors import ModelBlobError
from vtc_fw.ml.forest_format import forest_from_bytes, forest_to_bytes
from vtc_fw.ml.protocol import train_paper_protocol


def serialize_estimator(estimator: RandomForestRegressor) -> tuple[str, bytes]:
    """The blob of a forest (JSON and ``.npy`` arrays, no pickle) and its SHA-256, the model id."""
    data = forest_to_bytes(estimator)
    return hashlib.sha256(data).hexdigest(), data


def load_estimator(model_blobs: Store, model_id: str) -> RandomForestRegressor:
    """The estimator stored under ``model_id``, verified against its content hash.

    The blob is parsed as data (:func:`vtc_fw.ml.forest_format.forest_from_bytes`), never
    unpickled, so whoever can write to the database cannot make this run code.

    Raises:
        LookupError: No blob with that id.
        ModelBlobError: The stored bytes do not hash to ``model_id`` or are not a safe blob.
    """
    document = model_blobs.query_one({"model_id": model_id})
    if document is None:
        raise LookupError(f"no model blob {model_id}")
    try:
        data = base64.b64decode(document["data"], validate=True)
    except (KeyError, TypeError, binascii.Error) as error:
        raise ModelBlobError(f"model blob {model_id} holds no base64 data: {error}") from error
    if hashlib.sha256(data).hexdigest() != model_id:
        raise ModelBlobError(f"model blob {model_id} is corrupt (its SHA-256 is not its id)")
    return forest_from_bytes(data)


def latest_model(models: Store) -> dict[str, Any] | None:
    """The newest successful model document (without its large per-record lists)."""
    documents = models.query(
        {"state": "successful"},
        properties=["model_id", "exponent", "feature_columns", "last_updated", "preset"],
        sort={"last_updated": -1},
        limit=1,
    )
    return next(iter(documents), None)


class TrainBuilder(Builder):
    """Train the paper's random forest on every labelled record, when new data arrived.

    The training table joins the successful ``features`` documents with the SAMS of the
    successful ``xes`` documents. Records whose tasks failed, whose features failed or are
    null, or that lie outside the training domain are left out and counted in the model
    document. Nothing is trained when no features or xes document is newer than the last
    successful model. A failed training attempt is stored as a ``state="failed"`` document
    and tried again on the next build (a fix of the code, not of the data, may cure it).

    Args:
        features: Source store of feature documents (key ``record_key``).
        xes: Source store of xes documents (key ``record_key``).
        models: Target store of model documents (key ``model_id``).
        model_blobs: Target store of model blobs (GridFS bucket ``model_blobs``).
        seed: Seed of the whole protocol (reproducible models).
        n_iter: Draws of the randomized search (paper: 100).
        cv: Cross-validation folds (paper: 5).
        n_jobs: Parallel jobs of the search (None: 1).
        search_space: Lists of candidate values replacing the paper's space (tests only).
        permutation_repeats: Permutations per feature for the importances.
        balanced: Also run the balanced-per-element variant.
    """

    def __init__(
        self,
        features: Store,
        xes: Store,
        models: Store,
        model_blobs: Store,
        seed: int = 0,
        n_iter: int = 100,
        cv: int = 5,
        n_jobs: int | None = None,
        search_space: dict[str, list[Any]] | None = None,
        permutation_repeats: int = 10,
        balanced: bool = True,
        **kwargs: Any,
    ) -> None:
        self.features = features
        self.xes = xes
        self.models = models
        self.model_blobs = model_blobs
        self.seed = seed
        self.n_iter = n_iter
        self.cv = cv
        self.n_jobs = n_jobs
        self.search_space = search_space
        self.permutation_repeats = permutation_repeats
        self.balanced = balanced
        self.documents_written = 0
        super().__init__(sources=[features, xes], targets=[models, model_blobs], **kwargs)

    def get_items(self) -> Iterator[dict[str, Any]]:
        """One item (all labelled data) when something changed since the last training."""
        newest_source = newest(
            doc[store.last_updated_field]
            for store in (self.features, self.xes)
            for doc in store.query(properties=[store.last_updated_field])
            if doc.get(store.last_updated_field) is not None
        )
        if newest_source is None or self.xes.count({"state": "successful"}) == 0:
            self.logger.info("no labelled data: nothing to train")
            return
        last_model = next(
            iter(
                self.models.query(
                    {"state": "successful"},
                    properties=["sources_last_updated"],
                    sort={"last_updated": -1},
                    limit=1,
                )
            ),
            None,
        )
        if last_model and as_utc(last_model["sources_last_updated"]) >= newest_source:
            self.logger.info("no new features or xes since the last model: skipping training")
            return
        self.total = 1
        yield {
            "features": list(self.features.query()),
            "xes": list(
                self.xes.query(
                    properties=["record_key", "state", "sams", "preset", "error", "self_consistent"]
                )
            ),
            "sources_last_updated": newest_source,
        }

    def process_item(self, item: dict[str, Any]) -> dict[str, Any]:
        """Train on the joined table (pure, no database): the model document and its blob."""
        table, excluded, preset = training_table(item["features"], item["xes"])
        meta = BuilderMeta(builder=type(self).__name__, parameters=self._parameters())
        try:
            result = train_paper_protocol(
                table,
                seed=self.seed,
                n_iter=self.n_iter,
                cv=self.cv,
                n_jobs=self.n_jobs,
                search_space=self.search_space,
                permutation_repeats=self.permutation_repeats,
                balanced=self.balanced,
            )
        except Exception as error:  # too few rows, degenerate data...: record, do not crash
            failed = FailedModelDocument.from_exception(
                error,
                sources_last_updated=item["sources_last_updated"],
                excluded=excluded,
                builder_meta=meta,
            )
            return {"model": failed.model_dump()}
        model_id, data = serialize_estimator(result.estimator)
        document = ModelDocument.from_result(
            result,
            model_id=model_id,
            preset=preset,
            excluded=excluded,
            sources_last_updated=item["sources_last_updated"],
            builder_meta=meta,
        )
        blob = {
            "model_id": model_id,
            "data": base64.b64encode(data).decode("ascii"),
            "last_updated": document.last_updated,
        }
        return {"model": document.model_dump(), "blob": blob}

    def update_targets(self, items: list[dict[str, Any]]) -> None:
        """Store the blob first, then the document that points to it."""
        for item in items:
            if "blob" in item:
                self.model_blobs.update([item["blob"]], key="model_id")
            self.models.update([item["model"]], key="model_id")
            self.documents_written += 1

    def _parameters(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "n_iter": self.n_iter,
            "cv": self.cv,
            "search_space": self.search_space or "paper",
            "permutation_repeats": self.permutation_repeats,
            "balanced": self.balanced,
        }


def training_table(
    features: list[dict[str, Any]], xes: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, int], str | None]:
    """Join feature documents with SAMS targets.

    Returns:
        The labelled rows (features, sweep columns and ``sams``), the counts of records left
        out before the protocol (``failed_tasks``: xes failed; ``no_scf``: a site's spectra
        came without SCF, see ``XesDocument.self_consistent``; ``no_features``: labelled
        but without successful features), and the preset of the targets.
    """
    target = {doc["record_key"]: doc for doc in xes if doc.get("self_consistent") is not False}
    featurized = {doc["record_key"]: doc for doc in features if doc.get("state") == "successful"}
    rows = []
    for key, document in featurized.items():
        xes_doc = target.get(key)
        if xes_doc is None or xes_doc.get("state") != "successful":
            continue
        row = FeatureDocument.model_validate(document).training_row()
        rows.append({**row, "sams": xes_doc["sams"]})
    labelled = [key for key, doc in target.items() if doc.get("state") == "successful"]
    excluded = {
        "failed_tasks": sum(1 for doc in xes if doc.get("state") != "successful"),
        "no_scf": sum(1 for doc in xes if doc.get("self_consistent") is False),
        "no_features": sum(1 for key in labelled if key not in featurized),
    }
    presets = sorted({doc["preset"] for doc in xes if doc.get("preset")})
    return rows, excluded, ",".join(presets) or None
