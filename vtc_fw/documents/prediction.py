"""The ``predictions`` collection: one document per (record, model).

Every model writes its own predictions (key ``"{record_key}:{model_id}"``), so the
predictions of older models stay queryable next to the newest ones.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from vtc_fw.documents.base import BuilderMeta, Document, ErrorInfo, State, utc_now
from vtc_fw.settings import FeatureSet, ModelTarget


class PredictionDocument(Document):
    """Predicted SAMS (or the model's other target) of one record by one model.

    With the trees' spread and the domain flag; ``target`` says what ``sams`` holds.
    """

    prediction_key: str = Field(description='"{record_key}:{model_id}".')
    record_key: str = Field(description='Record key "{structure_id}:{element}".')
    structure_id: str = Field(description="Id of the structure in the structures collection.")
    element: str | None = Field(description="Absorbing 3d element X.")
    formula: str | None = Field(default=None, description="Reduced formula of the structure.")
    model_id: str = Field(description="model_id of the model (models collection) that predicted.")
    model_trained: datetime = Field(description="When that model was trained (newest wins).")
    exponent: int | None = Field(description="Feature exponent the model's inputs used.")
    target: ModelTarget = Field(
        default=ModelTarget.SAMS,
        description="What the model predicts, so what sams and sams_std hold: sams (the "
        "paper's SAMS), sams_max or a_inv.",
    )
    feature_set: FeatureSet = Field(
        default=FeatureSet.PAPER, description="The model's inputs: paper or crystal."
    )
    fidelity: str = Field(
        default="features",
        description="Tier of the prediction: features (the model; every builder prediction), "
        "as opposed to `vtc-fw predict --fidelity cheap|paper` answers, which run FEFF.",
    )
    state: State = Field(description="successful, or failed (features missing).")
    error: ErrorInfo | None = Field(default=None, description="Why no prediction was made.")
    sams: float | None = Field(
        default=None, description="Predicted value of the target (mean over trees)."
    )
    sams_std: float | None = Field(
        default=None,
        description="Standard deviation of the trees' values: the model's uncertainty.",
    )
    in_domain: bool = Field(
        description="Inside the paper's training domain; false predictions are not to be trusted."
    )
    last_updated: datetime = Field(
        default_factory=utc_now, description="last_updated of the features document used."
    )
    builder_meta: BuilderMeta = Field(description="Provenance of this document.")
