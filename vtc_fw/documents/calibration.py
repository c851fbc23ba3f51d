"""The ``calibrations`` collection: one document per fitted calibration of cheap labels.

A calibration maps a cheap FEFF fidelity's SAMS (preset ``cheap_preset``, e.g. "screen") and a
record's features to the ``paper_preset`` SAMS (:mod:`vtc_fw.ml.calibration`). Its estimator
lives in the ``model_blobs`` bucket under ``calibration_id`` like a model's; the document holds
the repeated-CV error of every method on the paired records and which records those were (by
their hash), so a grown paired set is seen and the calibration refit.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from vtc_fw.documents.base import BuilderMeta, Document, State, utc_now
from vtc_fw.ml.calibration import CalibrationScores


class CalibrationDocument(Document):
    """A calibration of cheap labels to paper labels, fitted on every paired record."""

    calibration_id: str = Field(description="SHA-256 of the estimator's bytes in model_blobs.")
    state: State = Field(default=State.SUCCESSFUL, description="Always successful.")
    method: str = Field(description="The method fitted: the storable one with the lowest CV MAE.")
    cheap_preset: str = Field(description="FEFF preset of the cheap labels (the input).")
    paper_preset: str = Field(description="FEFF preset of the labels it predicts.")
    exponent: int = Field(description="Feature exponent of the moment sums it reads.")
    pairs_hash: str = Field(description="SHA-256 of the sorted record keys of the paired set.")
    scores: CalibrationScores = Field(description="Repeated-CV error of every method.")
    cv_mae: float = Field(description="The fitted method's CV MAE: the calibrated label's error.")
    sources_last_updated: datetime = Field(description="Newest last_updated of the inputs seen.")
    last_updated: datetime = Field(default_factory=utc_now, description="When it was fitted.")
    builder_meta: BuilderMeta = Field(description="Provenance of this document.")
