"""The ``models`` collection: one document per trained random forest.

The estimator itself lives in the GridFS bucket ``model_blobs`` (JSON and ``.npy`` arrays in a
ZIP, :mod:`vtc_fw.ml.forest_format`; never a pickle) under ``model_id``, the SHA-256 of those
bytes; this document holds everything needed to judge and reproduce it. A model's configuration
is its ``feature_set``, its ``target`` and its label mix (``cheap_preset``: paper labels only,
or with the calibrated labels of a cheap FEFF preset; ``fidelity`` counts the labels by preset);
the current model of a configuration is the newest successful document with it
(:func:`configuration_query`).
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import Field

from vtc_fw.documents.base import BuilderMeta, Document, ErrorInfo, State, utc_now
from vtc_fw.ml.protocol import ProtocolMetrics, ProtocolResult
from vtc_fw.settings import FeatureSet, ModelTarget


class TrainingAttempt(Document):
    """What every ``models`` document holds, trained or failed: key, sources and provenance."""

    model_id: str = Field(
        description="SHA-256 of the model blob (vtc_fw.ml.forest_format) in model_blobs; "
        '"failed-<UTC time>" for a failed attempt.'
    )
    state: State = Field(description="successful, or failed (FailedModelDocument).")
    excluded: dict[str, int] = Field(
        default_factory=dict,
        description="Records left out of training, by reason (failed tasks, null features...).",
    )
    sources_last_updated: datetime = Field(
        description="Newest last_updated of the features and xes documents seen."
    )
    last_updated: datetime = Field(default_factory=utc_now, description="When it was tried.")
    builder_meta: BuilderMeta = Field(description="Provenance of this document.")


class ModelDocument(ProtocolMetrics, TrainingAttempt):
    """A random forest trained with the paper's protocol: its metrics and its data.

    The metrics are the fields of :class:`~vtc_fw.ml.protocol.ProtocolMetrics`, defined once.
    """

    state: State = Field(default=State.SUCCESSFUL, description="Always successful.")
    target: ModelTarget = Field(
        default=ModelTarget.SAMS,
        description="What the model predicts: sams (the paper's), sams_max or a_inv (xes fields).",
    )
    preset: str | None = Field(default=None, description="FEFF preset of the training targets.")
    fidelity: dict[str, int] = Field(
        default_factory=dict,
        description='Labels trained on (training and test split) by FEFF preset, e.g. {"paper": '
        '496} or {"paper": 496, "screen": 1200}; empty in models trained before it was recorded.',
    )
    cheap_preset: str | None = Field(
        default=None,
        description="FEFF preset of the calibrated cheap labels trained on beside those of "
        "preset (n_cheap, cheap_keys); null: labels of preset only, as in every model trained "
        "before the choice existed.",
    )
    n_records: int = Field(description="Records with features that were considered.")

    @classmethod
    def from_result(
        cls,
        result: ProtocolResult,
        *,
        model_id: str,
        preset: str | None,
        excluded: dict[str, int],
        sources_last_updated: datetime,
        builder_meta: BuilderMeta,
        target: ModelTarget = ModelTarget.SAMS,
        fidelity: dict[str, int] | None = None,
        cheap_preset: str | None = None,
    ) -> ModelDocument:
        """The document of a protocol run.

        ``excluded`` adds counts found before the table (failed tasks) to the protocol's own.
        """
        return cls(
            **result.metrics().model_dump(),
            model_id=model_id,
            target=target,
            fidelity=fidelity or {},
            cheap_preset=cheap_preset,
            preset=preset,
            n_records=result.n_rows,
            excluded={**excluded, **result.excluded},
            sources_last_updated=sources_last_updated,
            builder_meta=builder_meta,
        )


class AnyLabels(Enum):
    """The label mix of a model query that accepts every mix (:data:`ANY_LABELS`)."""

    ANY = "any"


ANY_LABELS: Literal[AnyLabels.ANY] = AnyLabels.ANY
"""``cheap_preset`` of :func:`configuration_query` for models of any label mix (None would ask
for paper labels only)."""


def configuration_query(
    feature_set: FeatureSet | str | None = None,
    target: ModelTarget | str | None = None,
    cheap_preset: str | AnyLabels | None = ANY_LABELS,
) -> dict[str, Any]:
    """The Mongo filter of the successful models of one configuration.

    Args:
        feature_set: Only models with these inputs (None: any).
        target: Only models of this target (None: any).
        cheap_preset: Only models trained with the calibrated labels of this cheap preset;
            None: only models of paper labels alone; :data:`ANY_LABELS`: any mix.

    Documents written before a field existed hold its old meaning: no ``feature_set`` is the
    paper's, no ``target`` is SAMS, no ``cheap_preset`` is paper labels only.
    """
    query: dict[str, Any] = {"state": State.SUCCESSFUL.value}
    legacy = {"feature_set": FeatureSet.PAPER.value, "target": ModelTarget.SAMS.value}
    for field, value in (("feature_set", feature_set), ("target", target)):
        if value is None:
            continue
        value = str(value)  # an enum's str is its value
        query[field] = {"$in": [value, None]} if value == legacy[field] else value
    if cheap_preset is not ANY_LABELS:
        query["cheap_preset"] = cheap_preset  # null also matches documents without the field
    return query


class FailedModelDocument(TrainingAttempt):
    """A training attempt that failed (too few rows, degenerate data...), kept as data.

    It shares the ``models`` collection and its key with :class:`ModelDocument`; its
    ``model_id`` is ``failed-<UTC time>``, never a content hash.
    """

    state: State = Field(default=State.FAILED, description="Always failed.")
    error: ErrorInfo = Field(description="Why no model was trained.")

    @classmethod
    def from_exception(
        cls,
        error: BaseException,
        *,
        sources_last_updated: datetime,
        excluded: dict[str, int],
        builder_meta: BuilderMeta,
    ) -> FailedModelDocument:
        """The document of a failed training attempt."""
        now = utc_now()
        return cls(
            model_id=f"failed-{now.strftime('%Y%m%dT%H%M%S%f')}",
            error=ErrorInfo.from_exception(error),
            excluded=excluded,
            sources_last_updated=sources_last_updated,
            last_updated=now,
            builder_meta=builder_meta,
        )
