"""The ``models`` collection: one document per trained random forest.

The estimator itself lives in the GridFS bucket ``model_blobs`` (joblib bytes) under
``model_id``, the SHA-256 of those bytes; this document holds everything needed to judge
and reproduce it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from vtc_fw.documents.base import BuilderMeta, Document, ErrorInfo, State, utc_now
from vtc_fw.ml.protocol import ProtocolResult


class ElementMetrics(BaseModel):
    """Scores restricted to one absorber element (test set, or out-of-fold on training)."""

    element: str = Field(description="Absorbing 3d element.")
    n_test: int = Field(
        description="Records of this element scored (training records for out-of-fold scores)."
    )
    r2: float | None = Field(description="R² on them (null below 2 records).")
    mae: float = Field(description="Mean absolute error of SAMS on them.")


class BalancedMetrics(BaseModel):
    """Scores of the balanced variant (equal records per element, same hyperparameters)."""

    n_per_element: int = Field(description="Records drawn per element.")
    elements: list[str] = Field(description="Elements included.")
    r2_train: float = Field(description="R² on the balanced training split.")
    r2_test: float = Field(description="R² on the balanced test split.")
    mae_train: float = Field(description="MAE on the balanced training split.")
    mae_test: float = Field(description="MAE on the balanced test split.")
    per_element: list[ElementMetrics] = Field(description="Balanced test scores per element.")


class ModelDocument(Document):
    """A random forest trained with the paper's protocol, its metrics and its data."""

    model_id: str = Field(description="SHA-256 of the joblib bytes in the model_blobs bucket.")
    state: State = Field(
        default=State.SUCCESSFUL, description="successful (failures: FailedModelDocument)."
    )
    target: str = Field(default="sams", description="What the model predicts.")
    preset: str | None = Field(default=None, description="FEFF preset of the training targets.")
    exponent: int | None = Field(description="Feature exponent n of QAMS, DAMS, IAMS.")
    feature_columns: list[str] = Field(description="Input columns, in the estimator's order.")
    exponent_sweep: dict[str, Any] | None = Field(
        default=None, description="r of QAMS/IAMS/DAMS with SAMS per exponent (training rows)."
    )
    best_params: dict[str, Any] = Field(description="Hyperparameters chosen by the search.")
    seed: int = Field(description="Seed of split, folds, draws, forests and permutations.")
    n_iter: int = Field(description="Hyperparameter draws of the randomized search.")
    cv: int = Field(description="Cross-validation folds.")
    cv_best_r2: float = Field(description="Mean CV R² of the chosen configuration.")
    cv_results: list[dict[str, Any]] = Field(description="Every draw: params, mean/std CV R².")
    r2_train: float = Field(description="R² of the refit on the training split.")
    r2_test: float = Field(description="R² on the held-out 20 % test split.")
    mae_train: float = Field(description="MAE of SAMS on the training split.")
    mae_test: float = Field(description="MAE of SAMS on the test split.")
    importances: dict[str, float] = Field(
        description=(
            "Permutation importance in units of a uniform-noise feature's (its mean, or its std"
            " when larger; 1 = noise)."
        )
    )
    raw_importances: dict[str, dict[str, float]] = Field(
        description="Mean and std of the test-MSE increase on permutation, noise included."
    )
    per_element: list[ElementMetrics] = Field(description="Test-set scores per element.")
    per_element_oof: list[ElementMetrics] = Field(
        default_factory=list,
        description=(
            "Scores per element of the cv-fold out-of-fold predictions on the training records "
            "with the chosen hyperparameters; the hyperparameters were chosen on these same "
            "folds, so slightly optimistic (empty in models trained before it existed)."
        ),
    )
    r2_oof: float | None = Field(
        default=None, description="R² of those out-of-fold predictions on all training records."
    )
    mae_oof: float | None = Field(
        default=None, description="MAE of those out-of-fold predictions on all training records."
    )
    balanced: BalancedMetrics | None = Field(description="Balanced-per-element variant.")
    train_keys: list[str] = Field(description="Record keys of the training split.")
    test_keys: list[str] = Field(description="Record keys of the test split.")
    test_elements: list[str] = Field(description="Element of each test record.")
    test_true: list[float] = Field(description="True SAMS of each test record.")
    test_predicted: list[float] = Field(description="Predicted SAMS of each test record.")
    n_records: int = Field(description="Records with features that were considered.")
    excluded: dict[str, int] = Field(
        description="Records left out of training, by reason (failed tasks, null features...)."
    )
    sources_last_updated: datetime = Field(
        description="Newest last_updated of the features and xes documents seen."
    )
    last_updated: datetime = Field(default_factory=utc_now, description="When it was trained.")
    builder_meta: BuilderMeta = Field(description="Provenance of this document.")

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
    ) -> ModelDocument:
        """The document of a protocol run.

        ``excluded`` adds counts found before the table (failed tasks) to the protocol's own.
        """
        return cls(
            model_id=model_id,
            preset=preset,
            exponent=result.exponent,
            feature_columns=result.feature_columns,
            exponent_sweep=result.sweep.as_dict() if result.sweep else None,
            best_params=result.best_params,
            seed=result.seed,
            n_iter=result.n_iter,
            cv=result.cv,
            cv_best_r2=result.cv_best_r2,
            cv_results=result.cv_results,
            r2_train=result.r2_train,
            r2_test=result.r2_test,
            mae_train=result.mae_train,
            mae_test=result.mae_test,
            importances=result.importances,
            raw_importances=result.raw_importances,
            per_element=[ElementMetrics(**asdict(s)) for s in result.per_element],
            per_element_oof=[ElementMetrics(**asdict(s)) for s in result.per_element_oof],
            r2_oof=result.r2_oof,
            mae_oof=result.mae_oof,
            balanced=(
                BalancedMetrics(**asdict(result.balanced)) if result.balanced is not None else None
            ),
            train_keys=result.train_keys,
            test_keys=result.test_keys,
            test_elements=result.test_elements,
            test_true=result.test_true,
            test_predicted=result.test_predicted,
            n_records=result.n_rows,
            excluded={**excluded, **result.excluded},
            sources_last_updated=sources_last_updated,
            builder_meta=builder_meta,
        )


class FailedModelDocument(Document):
    """A training attempt that failed (too few rows, degenerate data...), kept as data.

    It shares the ``models`` collection and its key with :class:`ModelDocument`; its
    ``model_id`` is ``failed-<UTC time>``, never a content hash.
    """

    model_id: str = Field(description='"failed-<UTC time of the attempt>".')
    state: State = Field(default=State.FAILED, description="Always failed.")
    error: ErrorInfo = Field(description="Why no model was trained.")
    excluded: dict[str, int] = Field(
        default_factory=dict, description="Records left out of training, by reason."
    )
    sources_last_updated: datetime = Field(
        description="Newest last_updated of the features and xes documents seen."
    )
    last_updated: datetime = Field(default_factory=utc_now, description="When it was tried.")
    builder_meta: BuilderMeta = Field(description="Provenance of this document.")

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
