"""The server-rendered pages: candidates, one record, the newest model, the API reference."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from vtc_fw import THREE_D_METALS
from vtc_fw.api.app import ServerState, database_address
from vtc_fw.api.candidates import COLUMNS, SORT_KEYS, CandidateQuery, CandidateQueryError
from vtc_fw.api.record import (
    RecordView,
    load_record,
    spectra_of,
    spectra_version,
    structure_cif,
    structure_summary,
)
from vtc_fw.api.resources import RESOURCE_COLLECTIONS, resource_descriptions
from vtc_fw.builders.train import ensemble_of, searched
from vtc_fw.ml.plots import plot_polarized_spectra, write_report

router = APIRouter(include_in_schema=False)

MODEL_FIGURES = {
    "predicted_vs_true": "Predicted against FEFF SAMS on the held-out test records",
    "per_element_r2": "R² per element (test, out-of-fold on training, balanced test)",
    "importances": "Permutation importances (1 = as informative as noise)",
    "exponent_sweep": "Correlation of the moment sums with SAMS against the exponent n",
    "sams_distribution": "FEFF SAMS per element (labelled records)",
    "qams_distribution": "QAMS per element (labelled records)",
}
MODEL_ID = re.compile(r"^[0-9A-Za-z_-]{1,128}$")


def _state(request: Request) -> ServerState:
    return request.app.state.vtc


def _render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    return _state(request).templates.TemplateResponse(
        request, template, context, status_code=status_code
    )


# --- candidates ------------------------------------------------------------------------------


def candidate_query(params: dict[str, str]) -> CandidateQuery:
    """The table's selection from a query string (400 on a malformed value)."""
    allowed = {*CandidateQuery.__dataclass_fields__}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise HTTPException(400, f"unknown parameter(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    try:
        for name in ("sams_min", "sams_max", "sams_std_max"):
            if params.get(name, "").strip():
                values[name] = float(params[name])
        for name in ("page", "per_page"):
            if params.get(name, "").strip():
                values[name] = int(params[name])
        for name in ("in_domain", "computed"):
            if name in params:
                values[name] = _tristate(name, params[name])
        if params.get("element"):
            values["element"] = params["element"]
        if params.get("sort"):
            values["sort"] = params["sort"]
        return CandidateQuery(**values)
    except (ValueError, CandidateQueryError) as error:
        raise HTTPException(400, f"invalid parameter: {error}") from error


def _tristate(name: str, value: str) -> bool | None:
    choices = {"true": True, "false": False, "any": None, "": None}
    if value.lower() not in choices:
        raise ValueError(f"{name} must be true, false or any")
    return choices[value.lower()]


@router.get("/")
def candidates_page(request: Request) -> Response:
    """The candidates table."""
    query = candidate_query(dict(request.query_params))
    state = _state(request)
    page = state.candidates.page(query)
    return _render(
        request,
        "candidates.html",
        page=page,
        query=query,
        elements=THREE_D_METALS,
        sort_keys=SORT_KEYS,
        database=database_address(state.config),
    )


@router.get("/candidates.csv")
def candidates_csv(request: Request) -> Response:
    """The whole selection (not just the page) as CSV."""
    rows = _state(request).candidates.download(candidate_query(dict(request.query_params)))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS))
    writer.writeheader()
    writer.writerows(rows)
    return PlainTextResponse(
        buffer.getvalue(),
        media_type="text/csv",
        headers={"content-disposition": 'attachment; filename="candidates.csv"'},
    )


@router.get("/candidates.json")
def candidates_json(request: Request) -> Response:
    """The whole selection (not just the page) as JSON: ``{"query", "count", "data"}``."""
    query = candidate_query(dict(request.query_params))
    rows = _state(request).candidates.download(query)
    body = {"query": query.as_params(), "count": len(rows), "data": rows}
    return Response(
        json.dumps(body, indent=1),
        media_type="application/json",
        headers={"content-disposition": 'attachment; filename="candidates.json"'},
    )


# --- one record ------------------------------------------------------------------------------


def _record_or_404(request: Request, record_key: str) -> RecordView:
    record = load_record(_state(request).stores, record_key)
    if not record.exists:
        raise HTTPException(404, f"no record {record_key!r} in the database")
    return record


@router.get("/records/{record_key}")
def record_page(request: Request, record_key: str) -> Response:
    """Structure, features, predictions and FEFF result of one record."""
    record = _record_or_404(request, record_key)
    newest = _state(request).candidates.newest_model()
    return _render(
        request,
        "record.html",
        record=record,
        structure=structure_summary(record.structure),
        newest_model_id=newest["model_id"] if newest else None,
    )


@router.get("/records/{record_key}/structure.cif")
def record_cif(request: Request, record_key: str) -> Response:
    """The record's structure as a CIF file."""
    record = _record_or_404(request, record_key)
    if not record.structure or not record.structure.get("structure"):
        raise HTTPException(404, f"no structure stored for {record.structure_id!r}")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", record.structure_id) + ".cif"
    return PlainTextResponse(
        structure_cif(record.structure),
        media_type="chemical/x-cif",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@router.get("/records/{record_key}/spectra.png")
def record_spectra(request: Request, record_key: str) -> Response:
    """The polarized spectra, their differences and the SAM (the paper's Fig. 2)."""
    state = _state(request)
    version = spectra_version(state.stores, record_key)
    if version is None:
        raise HTTPException(404, f"no FEFF spectra for {record_key!r}")
    name = hashlib.sha256(f"{record_key}|{version}".encode()).hexdigest()[:32]
    path = state.figure_dir / "spectra" / f"{name}.png"
    with state.figure_lock:
        if not path.is_file():
            spectra = spectra_of(state.stores, record_key)
            if spectra is None:
                raise HTTPException(404, f"no FEFF spectra for {record_key!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            energies, mu = spectra
            plot_polarized_spectra(np.asarray(energies), np.asarray(mu), path, title=record_key)
    return FileResponse(path, media_type="image/png")


# --- the model -------------------------------------------------------------------------------


def _model_or_404(request: Request, model_id: str | None) -> dict[str, Any]:
    state = _state(request)
    if model_id is None:
        newest = state.candidates.newest_model()
        if newest is None:
            raise HTTPException(404, "no trained model in the database yet (run vtc-fw build)")
        model_id = newest["model_id"]
    if not MODEL_ID.match(model_id):
        raise HTTPException(400, "model_id may hold letters, digits, _ and - only")
    model = state.stores["models"].query_one({"model_id": model_id, "state": "successful"})
    if model is None:
        raise HTTPException(404, f"no successful model {model_id!r}")
    return model


@router.get("/model")
def model_page(request: Request, model_id: str | None = None) -> Response:
    """Metrics table and report figures of the newest (or the given) model."""
    model = _model_or_404(request, model_id)
    figures = dict(MODEL_FIGURES)
    if not model.get("exponent_sweep"):
        figures.pop("exponent_sweep")
    importances = sorted(model.get("importances", {}).items(), key=lambda kv: -kv[1])
    space = searched(model)
    return _render(
        request,
        "model.html",
        model=model,
        figures=figures,
        importances=importances,
        ensemble=ensemble_of(model),
        search_space=space if isinstance(space, str) else "custom",
    )


@router.get("/model/{model_id}/{figure}.png")
def model_figure(request: Request, model_id: str, figure: str) -> Response:
    """One report figure of a model (rendered once, then served from the cache)."""
    if figure not in MODEL_FIGURES:
        raise HTTPException(404, f"no figure {figure!r}")
    model = _model_or_404(request, model_id)
    directory = _report_dir(_state(request), model)
    path = directory / f"{figure}.png"
    if not path.is_file():
        raise HTTPException(404, f"no figure {figure!r} for this model")
    return FileResponse(path, media_type="image/png")


def _report_dir(state: ServerState, model: dict[str, Any]) -> Path:
    directory = state.figure_dir / "models" / model["model_id"]
    with state.figure_lock:
        if not (directory / "metrics.md").is_file():
            xes_rows = list(
                state.stores["xes"].query(
                    {"state": "successful"}, properties=["element", "sams", "record_key"]
                )
            )
            labelled = {row["record_key"] for row in xes_rows}
            feature_rows = [
                row
                for row in state.stores["features"].query(
                    {"state": "successful"}, properties=["element", "QAMS", "record_key"]
                )
                if row["record_key"] in labelled
            ]
            write_report(model, xes_rows, feature_rows, directory)
    return directory


# --- API reference and health ----------------------------------------------------------------


@router.get("/api")
def api_root() -> Response:
    """The API reference."""
    return RedirectResponse("/api/docs")


@router.get("/api/docs")
def api_reference(request: Request) -> Response:
    """Every endpoint and query parameter, from the OpenAPI schema (no external scripts)."""
    schema = request.app.openapi()
    endpoints = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            parameters = [_parameter_row(p) for p in operation.get("parameters", [])]
            endpoints.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "tag": (operation.get("tags") or [""])[0],
                    "parameters": parameters,
                }
            )
    return _render(
        request,
        "api_docs.html",
        endpoints=endpoints,
        description=schema["info"].get("description", ""),
        collections=resource_descriptions(),
        version=schema["info"].get("version"),
    )


def _parameter_row(parameter: dict[str, Any]) -> dict[str, Any]:
    schema = parameter.get("schema", {})
    kinds = [option.get("type") for option in schema.get("anyOf", [schema])]
    kind = " or ".join(k for k in kinds if k and k != "null") or "string"
    bounds = [f"{key} {schema[key]}" for key in ("minimum", "maximum") if key in schema]
    return {
        "name": parameter["name"],
        "where": parameter.get("in", "query"),
        "type": kind + (f" ({', '.join(bounds)})" if bounds else ""),
        "default": schema.get("default"),
        "required": parameter.get("required", False),
        "description": parameter.get("description") or schema.get("title", ""),
    }


@router.get("/api/health")
def health(request: Request) -> dict[str, Any]:
    """Whether the database answers, and how many documents each collection holds."""
    stores = _state(request).stores
    return {
        "database": "ok",
        "counts": {name: stores[name].count() for name in RESOURCE_COLLECTIONS},
    }
