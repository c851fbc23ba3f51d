"""The REST resources: one read-only maggma resource per collection the builders write.

Each answers ``GET /api/<collection>/`` with the Materials Project envelope (``data``, ``meta``
with ``total_doc``) and ``GET /api/<collection>/<key>/`` with one document.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Request, Response
from maggma.api.query_operator import QueryOperator
from maggma.api.resource import HeaderProcessor, ReadOnlyResource
from maggma.core import Store
from pydantic import BaseModel

from vtc_fw.api.models import FeatureData, ModelData, PredictionData, StructureData, XesData
from vtc_fw.api.operators import (
    FieldsQuery,
    Filter,
    FilterQuery,
    PageQuery,
    SortQuery,
    range_filters,
)
from vtc_fw.app.screening import CANDIDATE_FIELDS
from vtc_fw.science.features import FEATURE_COLUMNS

RESOURCE_COLLECTIONS = ("predictions", "xes", "features", "structures", "models")
"""Collections served, in the order of the API reference."""

QUERY_TIMEOUT_S = 20
"""Longest a query may run before the API answers 504."""


class JsonHeader(HeaderProcessor):
    """Marks the unvalidated (orjson) responses as JSON."""

    def process_header(self, response: Response, request: Request) -> None:
        """Set the content type maggma's raw response leaves out."""
        response.headers["content-type"] = "application/json"

    def configure_query_on_request(self, request: Request, query_operator: QueryOperator) -> Any:
        """Not used: no query depends on the request's headers."""
        return {}


def _common(collection: str) -> list[Filter]:
    return [
        Filter("record_key", "record_key", "text", 'Record key "{structure_id}:{element}".'),
        Filter("structure_id", "structure_id", "text", "Structure id."),
        Filter("element", "element", "element", "Absorbing 3d element (Sc … Zn)."),
        Filter("formula", "formula", "text", "Reduced formula, exact (e.g. Fe2O3)."),
        Filter("state", "state", "text", f'"successful" or "failed" {collection} documents.'),
    ]


def _prediction_filters(latest_model_id: Callable[[], str]) -> list[Filter]:
    def resolve(model_id: str) -> str:
        return latest_model_id() if model_id == "latest" else model_id

    return [
        *_common("prediction"),
        *range_filters("sams", "predicted SAMS (mean over trees)"),
        *range_filters("sams_std", "tree spread of the predicted SAMS (uncertainty)"),
        Filter("in_domain", "in_domain", "flag", "Inside (true) or outside the training domain."),
        Filter(
            "model_id",
            "model_id",
            "text",
            'Predictions of this model only; "latest" for the newest successful model.',
            resolve=resolve,
        ),
    ]


def _xes_filters() -> list[Filter]:
    return [
        *_common("xes"),
        Filter("preset", "preset", "text", 'FEFF preset, e.g. "paper".'),
        Filter(
            "self_consistent",
            "self_consistent",
            "flag",
            "Every site's potentials from an SCF (false: no-SCF spectra, not trained on).",
        ),
        *range_filters("sams", "FEFF SAMS"),
        *range_filters("sams_max", "largest SAMS over bases from σ(E), where computed"),
        *range_filters("a_inv", "basis-invariant anisotropy of σ(E), where computed"),
    ]


def _feature_filters() -> list[Filter]:
    return [
        *_common("features"),
        Filter("in_domain", "in_domain", "flag", "Inside (true) or outside the training domain."),
        Filter("spacegroup", "spacegroup", "integer", "International space-group number."),
        *range_filters("QAMS", "quadrupole anisotropy sum"),
        *range_filters("DAMS", "dipole anisotropy sum"),
        *range_filters("IAMS", "inertia anisotropy sum"),
        *range_filters("density", "mass density", "g/cm³"),
    ]


def _structure_filters() -> list[Filter]:
    return [
        Filter("structure_id", "structure_id", "text", "Structure id."),
        Filter("formula", "formula", "text", "Reduced formula, exact (e.g. Fe2O3)."),
        Filter("source", "source", "text", 'Source, e.g. "oqmd-icsd".'),
        Filter("element", "three_d_metals", "element", "Structures containing this 3d metal."),
    ]


def _model_filters() -> list[Filter]:
    return [
        Filter("model_id", "model_id", "text", "Model id (SHA-256 of the estimator)."),
        Filter("state", "state", "text", '"successful" or "failed" trainings.'),
        Filter("preset", "preset", "text", "FEFF preset of the training targets."),
        *range_filters("r2_test", "test-set R²"),
    ]


_SPECS: dict[str, dict[str, Any]] = {
    "predictions": {
        "model": PredictionData,
        "sort": ["sams", "sams_std", "element", "formula", "record_key", "model_trained"],
        "fields": ["prediction_key", *CANDIDATE_FIELDS, "state"],
        "description": "Predicted SAMS per (record, model).",
    },
    "xes": {
        "model": XesData,
        "sort": ["sams", "sams_max", "a_inv", "element", "formula", "record_key", "last_updated"],
        "fields": [
            "record_key",
            "element",
            "formula",
            "preset",
            "state",
            "sams",
            "sam",
            "self_consistent",
            "has_sigma",
            "sams_max",
            "a_inv",
            "best_pair",
        ],
        "description": "FEFF polarized VtC-XES, SAM and SAMS per record.",
    },
    "features": {
        "model": FeatureData,
        "sort": ["QAMS", "DAMS", "IAMS", "density", "spacegroup", "element", "record_key"],
        "fields": [
            "record_key",
            "structure_id",
            "element",
            "formula",
            "spacegroup",
            "in_domain",
            "exponent",
            *FEATURE_COLUMNS,
        ],
        "description": "The model's input features per record.",
    },
    "structures": {
        "model": StructureData,
        "sort": ["structure_id", "formula"],
        "fields": ["structure_id", "formula", "source", "three_d_metals", "structure"],
        "description": "Crystal structures (pymatgen dicts).",
    },
    "models": {
        "model": ModelData,
        "sort": ["last_updated", "r2_test", "mae_test"],
        "fields": [
            "model_id",
            "state",
            "preset",
            "exponent",
            "last_updated",
            "r2_train",
            "r2_test",
            "mae_train",
            "mae_test",
            "r2_oof",
            "mae_oof",
            "cv_best_r2",
            "importances",
            "per_element",
            "best_params",
            "n_records",
            "excluded",
        ],
        "description": "Trained forests: metrics, importances, hyperparameters.",
    },
}


def build_resources(
    stores: Mapping[str, Store], latest_model_id: Callable[[], str]
) -> dict[str, ReadOnlyResource]:
    """``{collection: resource}`` over connected-on-demand stores.

    Args:
        stores: A maggma store per name of :data:`RESOURCE_COLLECTIONS`.
        latest_model_id: The newest successful model's id (``model_id=latest``).
    """
    filters = {
        "predictions": _prediction_filters(latest_model_id),
        "xes": _xes_filters(),
        "features": _feature_filters(),
        "structures": _structure_filters(),
        "models": _model_filters(),
    }
    return {
        name: _resource(name, stores[name], filters[name], **_SPECS[name])
        for name in RESOURCE_COLLECTIONS
    }


def _resource(
    name: str,
    store: Store,
    filters: list[Filter],
    *,
    model: type[BaseModel],
    sort: list[str],
    fields: list[str],
    description: str,
) -> ReadOnlyResource:
    return ReadOnlyResource(
        store,
        model,
        tags=[f"{name}: {description}"],
        query_operators=[
            FilterQuery(filters),
            SortQuery(sort),
            FieldsQuery(model, fields),
            PageQuery(),
        ],
        key_fields=list(model.model_fields),
        header_processor=JsonHeader(),
        timeout=QUERY_TIMEOUT_S,
        enable_get_by_key=True,
        disable_validation=True,
    )


def resource_descriptions() -> dict[str, str]:
    """One line per collection, for the pages."""
    return {name: spec["description"] for name, spec in _SPECS.items()}
