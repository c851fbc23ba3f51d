"""Screening and active learning: plain Mongo queries on ``predictions`` and ``xes``.

:func:`screening_query` is the query a user would type in a Mongo shell; :func:`screen`
merges the current SAMS model's predictions (the newest successful model of target SAMS, of the
requested feature set or any) with the FEFF values already computed (a FEFF SAMS wins over a
prediction); :func:`least_certain` picks the unlabelled records whose predictions the trees
disagree on most, the next ones worth a FEFF calculation. Every model-sourced row names its
model: ``model_id``, ``feature_set`` and ``target``.
"""

from __future__ import annotations

from typing import Any

from maggma.core import Store

from vtc_fw.builders.train import latest_model
from vtc_fw.settings import FeatureSet, ModelTarget
from vtc_fw.sources.oqmd import first_row_id

CANDIDATE_FIELDS = (
    "record_key",
    "structure_id",
    "element",
    "formula",
    "sams",
    "sams_std",
    "in_domain",
    "model_id",
    "feature_set",
    "target",
)


def screening_query(
    min_sams: float,
    *,
    element: str | None = None,
    model_id: str | None = None,
    in_domain_only: bool = True,
) -> dict[str, Any]:
    """The Mongo filter of predictions with SAMS ≥ ``min_sams``.

    Args:
        min_sams: Lowest predicted SAMS (dimensionless).
        element: Only records of this absorbing element.
        model_id: Only predictions of this model (the newest one in :func:`screen`).
        in_domain_only: Leave out records outside the training domain.
    """
    query: dict[str, Any] = {"state": "successful", "sams": {"$gte": min_sams}}
    if element is not None:
        query["element"] = element
    if model_id is not None:
        query["model_id"] = model_id
    if in_domain_only:
        query["in_domain"] = True
    return query


def screen(
    predictions: Store,
    xes: Store,
    models: Store,
    *,
    min_sams: float,
    element: str | None = None,
    limit: int = 20,
    in_domain_only: bool = True,
    feature_set: FeatureSet | str | None = None,
) -> list[dict[str, Any]]:
    """Records with SAMS ≥ ``min_sams``, highest first.

    A record's SAMS is its FEFF value when the ``xes`` collection has one (``source``
    ``"feff"``; spectra computed without SCF do not count), else the current SAMS model's
    prediction (``source`` ``"model"``, with the tree spread ``sams_std``); ``feature_set``
    picks the current model of those inputs (None: the newest SAMS model).

    Returns:
        Up to ``limit`` candidates: :data:`CANDIDATE_FIELDS` plus ``source``.
    """
    model = latest_model(models, feature_set, ModelTarget.SAMS)
    candidates: dict[str, dict[str, Any]] = {}
    if model is not None:
        query = screening_query(
            min_sams, element=element, model_id=model["model_id"], in_domain_only=in_domain_only
        )
        for doc in predictions.query(query, properties=list(CANDIDATE_FIELDS)):
            candidates[doc["record_key"]] = {**_pick(doc), "source": "model"}
    computed_query = {
        "state": "successful",
        "self_consistent": {"$ne": False},
        "sams": {"$gte": min_sams},
    }
    if element is not None:
        computed_query["element"] = element
    fields = ["record_key", "structure_id", "element", "formula", "sams", "preset"]
    for doc in xes.query(computed_query, properties=fields):
        predicted = candidates.get(doc["record_key"], {})
        candidates[doc["record_key"]] = {
            **predicted,
            **_pick(doc),
            "sams_predicted": predicted.get("sams"),
            "source": "feff",
        }
    ranked = sorted(candidates.values(), key=lambda c: c["sams"], reverse=True)
    return collapse_repeated_rows(ranked)[:limit]


SIGMA_QUANTITIES = ("sams_max", "a_inv")
"""Orientation quantities of σ that :func:`screen_sigma` ranks by (xes documents with σ)."""


def screen_sigma(
    xes: Store,
    quantity: str,
    *,
    minimum: float,
    element: str | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """Records whose FEFF σ gives ``quantity`` (SAMS_max or A_inv) ≥ ``minimum``, highest first.

    Only records computed with σ have these (``has_sigma``); spectra without SCF where the
    preset asked for one do not count.

    Raises:
        ValueError: ``quantity`` is not one of :data:`SIGMA_QUANTITIES`.
    """
    if quantity not in SIGMA_QUANTITIES:
        raise ValueError(f"quantity must be one of {SIGMA_QUANTITIES}, got {quantity!r}")
    query: dict[str, Any] = {
        "state": "successful",
        "has_sigma": True,
        "self_consistent": {"$ne": False},
        quantity: {"$gte": minimum},
    }
    if element is not None:
        query["element"] = element
    fields = [
        "record_key",
        "structure_id",
        "element",
        "formula",
        "preset",
        "sams",
        *SIGMA_QUANTITIES,
    ]
    found: list[dict[str, Any]] = [
        {**{name: doc.get(name) for name in fields}, "source": "feff"}
        for doc in xes.query(query, properties=fields)
    ]
    ranked = sorted(found, key=lambda c: float(c[quantity]), reverse=True)
    return collapse_repeated_rows(ranked, quantity)[:limit]


def collapse_repeated_rows(
    ranked: list[dict[str, Any]], quantity: str = "sams"
) -> list[dict[str, Any]]:
    """Keep one candidate per source entry that a dataset lists more than once.

    OQMD-ICSD holds some entries in several rows; vtc-fw ids the later ones
    ``"{name}#{row id}"`` (:func:`vtc_fw.sources.oqmd.first_row_id` undoes that). Rows of one
    name whose records have the same ``quantity`` (to 1e-9) are one candidate, listed once with
    the other ids under ``"repeated_as"``; rows that differ stay.
    """
    kept: dict[tuple[str, str, int], dict[str, Any]] = {}
    for candidate in ranked:
        name = first_row_id(str(candidate.get("structure_id") or candidate["record_key"]))
        key = (name, candidate.get("element") or "", round(candidate[quantity] * 1e9))
        if key in kept:
            kept[key].setdefault("repeated_as", []).append(candidate["record_key"])
        else:
            kept[key] = candidate
    return list(kept.values())


def least_certain(
    predictions: Store,
    xes: Store,
    models: Store,
    *,
    n: int,
    element: str | None = None,
    feature_set: FeatureSet | str | None = None,
) -> list[dict[str, Any]]:
    """The ``n`` in-domain records without a FEFF SAMS whose predictions spread most.

    The predictions are the current SAMS model's (of ``feature_set``; None: the newest).

    Returns:
        Prediction rows (:data:`CANDIDATE_FIELDS`), largest ``sams_std`` first; empty when
        there is no model yet.
    """
    model = latest_model(models, feature_set, ModelTarget.SAMS)
    if model is None:
        return []
    labelled = set(xes.distinct("record_key", {"state": "successful"}))
    query: dict[str, Any] = {
        "model_id": model["model_id"],
        "state": "successful",
        "in_domain": True,
    }
    if element is not None:
        query["element"] = element
    chosen = []
    cursor = predictions.query(query, properties=list(CANDIDATE_FIELDS), sort={"sams_std": -1})
    for doc in cursor:
        if doc["record_key"] not in labelled:
            chosen.append(_pick(doc))
        if len(chosen) == n:
            break
    return chosen


def _pick(doc: dict[str, Any]) -> dict[str, Any]:
    return {field: doc.get(field) for field in CANDIDATE_FIELDS if field in doc}
