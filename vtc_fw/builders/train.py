"""TrainBuilder: ``features`` + ``xes`` → ``models`` (+ the estimator in ``model_blobs``)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from maggma.core import Builder, Store

from vtc_fw.builders.incremental import as_utc, newest
from vtc_fw.db.config import DbConfig
from vtc_fw.documents.base import BuilderMeta
from vtc_fw.documents.features import FeatureDocument
from vtc_fw.documents.model import (
    ANY_LABELS,
    AnyLabels,
    FailedModelDocument,
    ModelDocument,
    configuration_query,
)
from vtc_fw.errors import ModelBlobError, UsageError
from vtc_fw.ml.calibration import CHEAP_COLUMN, DEFAULT_METHOD
from vtc_fw.ml.forest_format import forest_from_bytes, forest_to_bytes
from vtc_fw.ml.protocol import (
    Forest,
    ProtocolResult,
    forest_of,
    search_space_of,
    train_paper_protocol,
)
from vtc_fw.settings import (
    DEFAULT_FEATURE_SET,
    DEFAULT_PRESET,
    DEFAULT_SEARCH_SPACE,
    FeatureSet,
    ModelTarget,
    SearchSpace,
)

UNCALIBRATED_PRESETS = frozenset({"screen", "screen_scf"})
"""FEFF presets whose labels are never trained on alone: the cheap fidelity's SAMS is biased and
has a heavy tail against "paper" (docs/REPRODUCTION.md); they enter training only calibrated,
beside paper labels (``TrainBuilder(cheap_preset=...)``)."""
XES_PROPERTIES = [
    "record_key",
    "state",
    *(target.value for target in ModelTarget),
    "preset",
    "error",
    "self_consistent",
]
"""The fields of the ``xes`` documents that training reads: the labels and their provenance."""
MODEL_PROPERTIES = [
    "model_id",
    "exponent",
    "feature_columns",
    "last_updated",
    "preset",
    "feature_set",
    "target",
    "fidelity",
    "cheap_preset",
]
"""The fields of :func:`latest_model`: what predicting with a model and naming it need."""


def serialize_estimator(
    estimator: Forest, inputs: Sequence[str] | None = None
) -> tuple[str, bytes]:
    """The blob of a forest (JSON and ``.npy`` arrays, no pickle) and its SHA-256, the model id.

    ``inputs``, the model's feature columns, are stored in the blob (:func:`forest_to_bytes`).
    """
    data = forest_to_bytes(estimator, inputs)
    return hashlib.sha256(data).hexdigest(), data


def blob_document(model_id: str, data: bytes, last_updated: datetime) -> dict[str, Any]:
    """The ``model_blobs`` document of serialized estimator bytes (base64 text)."""
    return {
        "model_id": model_id,
        "data": base64.b64encode(data).decode("ascii"),
        "last_updated": last_updated,
    }


def load_estimator(model_blobs: Store, model_id: str) -> Forest:
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


def latest_model(
    models: Store,
    feature_set: FeatureSet | str | None = None,
    target: ModelTarget | str | None = None,
    cheap_preset: str | AnyLabels | None = ANY_LABELS,
) -> dict[str, Any] | None:
    """The current model of a configuration: the newest successful one with it.

    Args:
        models: The ``models`` store.
        feature_set: Only models with these inputs (None: any).
        target: Only models of this target (None: any).
        cheap_preset: Only models trained with the calibrated labels of this preset; None:
            only models of paper labels alone; ``ANY_LABELS``: any label mix.

    Returns:
        Its :data:`MODEL_PROPERTIES` (without the large per-record lists), ``feature_set`` and
        ``target`` filled in for documents older than them; None when there is none.
    """
    documents = models.query(
        configuration_query(feature_set, target, cheap_preset),
        properties=MODEL_PROPERTIES,
        sort={"last_updated": -1},
        limit=1,
    )
    model = next(iter(documents), None)
    if model is not None:
        model.setdefault("feature_set", FeatureSet.PAPER.value)
        model.setdefault("target", ModelTarget.SAMS.value)
    return model


def describe_model(model: dict[str, Any]) -> str:
    """``"model 0decece9a4f0 (feature set paper, target sams)"``: which model answered.

    A model trained with cheap labels says so: ``"..., target sams, labels paper 496 +
    calibrated screen 1200)"``.
    """
    feature_set = model.get("feature_set") or FeatureSet.PAPER.value
    target = model.get("target") or ModelTarget.SAMS.value
    return (
        f"model {model['model_id'][:12]} (feature set {feature_set}, target {target}"
        f"{label_mix(model)})"
    )


def label_mix(model: dict[str, Any]) -> str:
    """``", labels paper 496 + calibrated screen 1200"``, or nothing for paper labels only."""
    cheap = model.get("cheap_preset")
    if cheap is None:
        return ""
    counts = [
        f"{'calibrated ' if preset == cheap else ''}{preset} {n}"
        for preset, n in (model.get("fidelity") or {}).items()
    ]
    return f", labels {' + '.join(counts)}"


class TrainBuilder(Builder):
    """Train the paper's random forest on every labelled record, when new data arrived.

    The training table joins the successful ``features`` documents with the target (SAMS,
    SAMS_max or A_inv) of the successful ``xes`` documents of one FEFF preset. Records whose
    tasks failed, of another preset, without σ (for SAMS_max and A_inv), whose features failed
    or are null, or that lie outside the training domain are left out and counted in the model
    document. With ``cheap_preset``, the xes documents of that preset (in ``cheap_xes``, or in
    ``xes``) add cheap rows: the records without a label of ``preset`` join the training split
    with their calibrated cheap label, and the paired training records give the calibration
    (:func:`~vtc_fw.ml.protocol.train_paper_protocol`); the model is tested on labels of
    ``preset`` only. The model's configuration is its feature set, target and label mix
    (``cheap_preset``, None: labels of ``preset`` alone); nothing is trained when no features or
    xes document is newer than the configuration's last successful model, and labels of
    :data:`UNCALIBRATED_PRESETS` are never trained on alone. A failed training attempt is stored
    as a ``state="failed"`` document and tried again on the next build (a fix of the code, not
    of the data, may cure it). A retry that fails again on the same data, with the same settings
    and the same error, writes nothing.

    Args:
        features: Source store of feature documents (key ``record_key``).
        xes: Source store of xes documents (key ``record_key``).
        models: Target store of model documents (key ``model_id``).
        model_blobs: Target store of model blobs (GridFS bucket ``model_blobs``).
        seed: Seed of the whole protocol (reproducible models).
        n_iter: Draws of the randomized search (paper: 100).
        cv: Cross-validation folds (paper: 5).
        n_jobs: Parallel jobs of the search (None: 1).
        search_space: The search's space: a :class:`~vtc_fw.settings.SearchSpace` name, lists
            of candidate values (tests), or None for the feature set's own
            (:data:`~vtc_fw.settings.DEFAULT_SEARCH_SPACE`: paper for the paper's features, wide
            for the crystal sums). A model of the configuration searched over another space is
            trained again.
        permutation_repeats: Permutations per feature for the importances.
        balanced: Also run the balanced-per-element variant.
        feature_set: The model's inputs (default: the best validated, the crystal sums).
        target: What the model predicts (default: SAMS, the paper's).
        preset: FEFF preset of the labels trained on (others are left out and counted).
        cheap_preset: FEFF preset of calibrated cheap labels trained on beside them (None:
            none; the measured gain of 225 "screen" records was nil, docs/REPRODUCTION.md).
        cheap_xes: Source store of the xes documents of ``cheap_preset`` (one xes collection
            holds one preset; None: those in ``xes``).
        calibration: Method of the cheap labels' calibration (vtc_fw.ml.calibration).

    Raises:
        UsageError: ``cheap_preset`` is ``preset``.
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
        search_space: SearchSpace | str | dict[str, list[Any]] | None = None,
        permutation_repeats: int = 10,
        balanced: bool = True,
        feature_set: FeatureSet | str = DEFAULT_FEATURE_SET,
        target: ModelTarget | str = ModelTarget.SAMS,
        preset: str = DEFAULT_PRESET,
        cheap_preset: str | None = None,
        cheap_xes: Store | None = None,
        calibration: str = DEFAULT_METHOD,
        **kwargs: Any,
    ) -> None:
        if cheap_preset == preset:
            raise UsageError(f"cheap labels of preset {preset!r} would be its own paper labels")
        self.features = features
        self.xes = xes
        self.models = models
        self.model_blobs = model_blobs
        self.seed = seed
        self.n_iter = n_iter
        self.cv = cv
        self.n_jobs = n_jobs
        self.feature_set = FeatureSet(feature_set)
        self.search_space = (
            search_space
            if isinstance(search_space, dict)
            else SearchSpace(search_space or DEFAULT_SEARCH_SPACE[self.feature_set])
        )
        self.permutation_repeats = permutation_repeats
        self.balanced = balanced
        self.target = ModelTarget(target)
        self.preset = preset
        self.cheap_preset = cheap_preset
        self.cheap_xes = cheap_xes
        self.calibration = calibration
        self.documents_written = 0
        sources = [features, xes, *([cheap_xes] if cheap_xes is not None else [])]
        super().__init__(sources=sources, targets=[models, model_blobs], **kwargs)

    def ensure_indexes(self) -> None:
        """Indexes of the model queries (upserts by ``model_id``, newest by state)."""
        for field in ("model_id", "state", "last_updated"):
            self.models.ensure_index(field)
        self.model_blobs.ensure_index("model_id")

    def get_items(self) -> Iterator[dict[str, Any]]:
        """One item (all labelled data) when something changed since the last training."""
        self.ensure_indexes()
        if self.preset in UNCALIBRATED_PRESETS:
            self.logger.info(f"labels of preset {self.preset!r} are not trained on (uncalibrated)")
            return
        newest_source = newest(
            doc[store.last_updated_field]
            for store in self.sources
            for doc in store.query(properties=[store.last_updated_field])
            if doc.get(store.last_updated_field) is not None
        )
        if newest_source is None or self.xes.count({"state": "successful"}) == 0:
            self.logger.info("no labelled data: nothing to train")
            return
        last_model = next(
            iter(
                self.models.query(
                    configuration_query(self.feature_set, self.target, self.cheap_preset),
                    properties=["sources_last_updated", "builder_meta"],
                    sort={"last_updated": -1},
                    limit=1,
                )
            ),
            None,
        )
        if (
            last_model
            and as_utc(last_model["sources_last_updated"]) >= newest_source
            and searched(last_model) == self._search_space_name()
        ):
            self.logger.info(
                f"no new features or xes since the last {self.feature_set.value}/"
                f"{self.target.value}/{self.cheap_preset or 'paper-only'} model: skipping training"
            )
            return
        self.total = 1
        yield {
            "features": list(self.features.query()),
            "xes": list(self.xes.query(properties=XES_PROPERTIES)),
            "cheap_xes": self._cheap_xes(),
            "sources_last_updated": newest_source,
            "last_attempt": self._last_attempt(),
        }

    def _cheap_xes(self) -> list[dict[str, Any]]:
        """The xes documents of the cheap preset (none without one)."""
        if self.cheap_preset is None:
            return []
        store = self.cheap_xes or self.xes
        return list(store.query({"preset": self.cheap_preset}, properties=XES_PROPERTIES))

    def _last_attempt(self) -> dict[str, Any] | None:
        """The newest ``models`` document, trained or failed (without its large lists)."""
        properties = ["state", "error", "excluded", "sources_last_updated", "builder_meta"]
        newest_first = self.models.query(properties=properties, sort={"last_updated": -1}, limit=1)
        return next(iter(newest_first), None)

    def process_item(self, item: dict[str, Any]) -> dict[str, Any]:
        """Train on the joined table (pure, no database): the model document and its blob."""
        table, excluded, preset = training_table(
            item["features"],
            item["xes"],
            target=self.target,
            preset=self.preset,
            cheap_preset=self.cheap_preset,
        )
        cheap = cheap_table(item["features"], item["cheap_xes"], target=self.target)
        cheap_labels = f" and {len(cheap)} {self.cheap_preset}" if self.cheap_preset else ""
        self.logger.info(
            f"{len(table)} {self.preset}{cheap_labels} labels of {self.target.value}, "
            f"{self.feature_set.value} features; left out before training: {excluded}"
        )
        meta = BuilderMeta(builder=type(self).__name__, parameters=self._parameters())
        try:
            if not table:
                raise ValueError(
                    f"no record has both successful features and a {self.target.label} "
                    f"(left out: {excluded})"
                )
            result = train_paper_protocol(
                table,
                feature_set=self.feature_set,
                seed=self.seed,
                n_iter=self.n_iter,
                cv=self.cv,
                n_jobs=self.n_jobs,
                search_space=search_space_of(self.search_space),
                forest=forest_of(self.search_space),
                permutation_repeats=self.permutation_repeats,
                balanced=self.balanced,
                cheap=cheap,
                calibration=self.calibration,
            )
        except Exception as error:  # too few rows, degenerate data...: record, do not crash
            failed = FailedModelDocument.from_exception(
                error,
                sources_last_updated=item["sources_last_updated"],
                excluded=excluded,
                builder_meta=meta,
            )
            if repeats_failure(item.get("last_attempt"), failed):
                self.logger.info(f"training failed again as last time: {failed.error.message}")
                return {}
            return {"model": failed.model_dump()}
        model_id, data = serialize_estimator(result.estimator, result.feature_columns)
        document = ModelDocument.from_result(
            result,
            model_id=model_id,
            preset=preset,
            excluded=excluded,
            sources_last_updated=item["sources_last_updated"],
            builder_meta=meta,
            target=self.target,
            fidelity=label_fidelity(table, result, self.cheap_preset),
            cheap_preset=self.cheap_preset,
        )
        blob = blob_document(model_id, data, document.last_updated)
        return {"model": document.model_dump(), "blob": blob}

    def update_targets(self, items: list[dict[str, Any]]) -> None:
        """Store the blob first, then the document that points to it (a repeated failure: none)."""
        for item in items:
            if "model" not in item:
                continue
            if "blob" in item:
                self.model_blobs.update([item["blob"]], key="model_id")
            self.models.update([item["model"]], key="model_id")
            self.documents_written += 1

    def _parameters(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "n_iter": self.n_iter,
            "cv": self.cv,
            "search_space": self._search_space_name(),
            "permutation_repeats": self.permutation_repeats,
            "balanced": self.balanced,
            "feature_set": self.feature_set.value,
            "target": self.target.value,
            "preset": self.preset,
            **self._cheap_parameters(),
        }

    def _search_space_name(self) -> str | dict[str, list[Any]]:
        """The search space as recorded in ``builder_meta``: its name, or the given lists."""
        if isinstance(self.search_space, dict):
            return self.search_space
        return self.search_space.value

    def _cheap_parameters(self) -> dict[str, Any]:
        """The cheap labels' settings (none for paper labels only, as before they existed)."""
        if self.cheap_preset is None:
            return {}
        return {"cheap_preset": self.cheap_preset, "calibration": self.calibration}


def searched(model: dict[str, Any]) -> Any:
    """The search space a stored model was trained with ("paper" before it was recorded)."""
    parameters = (model.get("builder_meta") or {}).get("parameters") or {}
    return parameters.get("search_space", SearchSpace.PAPER.value)


def ensemble_of(model: dict[str, Any]) -> str:
    """What a stored model is, in words: the ensemble its search space is searched for."""
    space = searched(model)
    return "extremely randomized trees" if space == SearchSpace.EXTRA_TREES else "random forest"


def repeats_failure(last_attempt: dict[str, Any] | None, failed: FailedModelDocument) -> bool:
    """Whether the newest stored attempt failed the same way on the same data and settings.

    Same data: the same newest ``last_updated`` of the sources and the same counts of records
    left out; same settings: the same ``builder_meta.parameters``; same way: the same error
    reason and message.
    """
    if last_attempt is None or last_attempt.get("state") != "failed":
        return False
    error = last_attempt.get("error") or {}
    return (
        as_utc(last_attempt["sources_last_updated"]) == as_utc(failed.sources_last_updated)
        and last_attempt.get("excluded") == failed.excluded
        and (last_attempt.get("builder_meta") or {}).get("parameters")
        == failed.builder_meta.parameters
        and (error.get("reason"), error.get("message"))
        == (failed.error.reason, failed.error.message)
    )


def training_table(
    features: list[dict[str, Any]],
    xes: list[dict[str, Any]],
    *,
    target: ModelTarget | str = ModelTarget.SAMS,
    preset: str | None = None,
    cheap_preset: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int], str | None]:
    """Join feature documents with the labels of one target.

    Args:
        features: Feature documents.
        xes: Xes documents (at least :data:`XES_PROPERTIES`).
        target: The xes field that labels a row; it goes to the table's ``sams`` column.
        preset: Only labels of this FEFF preset (None: every preset of ``xes``).
        cheap_preset: Xes documents of this preset are cheap labels (:func:`cheap_table`),
            not counted under ``other_preset``.

    Returns:
        The labelled rows (features, sweep columns, ``sams`` holding the label and ``preset``
        its FEFF preset), the counts of records left out before the protocol
        (``other_preset``: xes of another preset; ``failed_tasks``: xes failed; ``no_scf``: a
        site's spectra came without SCF, see ``XesDocument.self_consistent``; ``no_features``:
        labelled but without successful features; for SAMS_max and A_inv ``no_sigma``:
        computed before σ was stored, so without that label), and the preset of the labels.
    """
    target = ModelTarget(target)
    chosen = [doc for doc in xes if preset is None or doc.get("preset") == preset]
    labels = {doc["record_key"]: doc for doc in chosen if doc.get("self_consistent") is not False}
    featurized = {doc["record_key"]: doc for doc in features if doc.get("state") == "successful"}
    rows, no_sigma = [], 0
    for key, document in featurized.items():
        xes_doc = labels.get(key)
        if xes_doc is None or xes_doc.get("state") != "successful":
            continue
        if target != ModelTarget.SAMS and xes_doc.get(target.value) is None:
            no_sigma += 1
            continue
        row = FeatureDocument.model_validate(document).training_row()
        rows.append({**row, "sams": xes_doc[target.value], "preset": xes_doc.get("preset")})
    labelled = [key for key, doc in labels.items() if doc.get("state") == "successful"]
    cheap = sum(1 for doc in xes if cheap_preset and doc.get("preset") == cheap_preset)
    excluded = {
        "other_preset": len(xes) - len(chosen) - cheap,
        "failed_tasks": sum(1 for doc in chosen if doc.get("state") != "successful"),
        "no_scf": sum(1 for doc in chosen if doc.get("self_consistent") is False),
        "no_features": sum(1 for key in labelled if key not in featurized),
    }
    if target != ModelTarget.SAMS:
        excluded["no_sigma"] = no_sigma
    presets = sorted({doc["preset"] for doc in chosen if doc.get("preset")})
    return rows, excluded, ",".join(presets) or None


def cheap_table(
    features: list[dict[str, Any]],
    cheap_xes: list[dict[str, Any]],
    *,
    target: ModelTarget | str = ModelTarget.SAMS,
) -> list[dict[str, Any]]:
    """The cheap rows of :func:`~vtc_fw.ml.protocol.train_paper_protocol`.

    Args:
        features: Feature documents.
        cheap_xes: Xes documents of the cheap preset.
        target: The xes field of the label.

    Returns:
        One row per record with successful features and a successful, self-consistent cheap
        label: the features, sweep columns and ``sams_cheap`` holding the label.
    """
    rows, _, _ = training_table(features, cheap_xes, target=target)
    for row in rows:
        row[CHEAP_COLUMN] = row.pop("sams")
    return rows


def training_documents(config: DbConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """All feature documents and the :data:`XES_PROPERTIES` of all xes documents of a database.

    What :class:`TrainBuilder` reads, for the scripts that compare models on the same data.
    """
    features, xes = config.store("features"), config.store("xes")
    features.connect()
    xes.connect()
    try:
        return list(features.query()), list(xes.query(properties=XES_PROPERTIES))
    finally:
        features.close()
        xes.close()


def label_fidelity(
    rows: list[dict[str, Any]], result: ProtocolResult, cheap_preset: str | None = None
) -> dict[str, int]:
    """The labels a model was trained and tested on, counted by FEFF preset.

    Args:
        rows: The training table (``key``, ``preset``).
        result: The protocol run.
        cheap_preset: Preset of its cheap labels, counted from ``result.n_cheap`` (None: none).
    """
    preset_of = {row["key"]: row.get("preset") for row in rows}
    used = [*result.train_keys, *result.test_keys]
    counts = Counter(str(preset_of[key]) for key in used)
    if cheap_preset is not None:
        counts[cheap_preset] = result.n_cheap
    return dict(counts)
