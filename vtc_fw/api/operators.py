"""maggma query operators of the API: typed parameters in, plain equality and range criteria out.

No parameter value ever becomes a Mongo operator or a field name: filters compare a typed value
(an element symbol, a finite number, a flag, an id of safe characters) with one fixed field;
sort and projection fields must be fields of the served document. Anything else is a 400.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import HTTPException, Query
from maggma.api.query_operator import QueryOperator
from maggma.api.utils import STORE_PARAMS
from pydantic import BaseModel

from vtc_fw import THREE_D_METALS

SAFE_TEXT = re.compile(r"^[A-Za-z0-9_.:#+()\[\]{}\-]{1,200}$")
"""Characters of record keys, structure and model ids, formulas and preset names."""

FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
"""A document field or a dotted path into one (``sweep.5.QAMS``); never starts with ``$``."""

FilterKind = Literal["element", "text", "flag", "min", "max", "integer"]

_ANNOTATIONS: dict[str, Any] = {
    "element": str | None,
    "text": str | None,
    "flag": bool | None,
    "min": float | None,
    "max": float | None,
    "integer": int | None,
}


@dataclass(frozen=True)
class Filter:
    """One query parameter and the criterion it makes.

    Args:
        param: Query parameter name (``sams_min``).
        field: Document field it tests (``sams``).
        kind: ``element`` (a 3d metal symbol), ``text`` (an id or formula, exact),
            ``flag`` (true/false), ``min``/``max`` (finite number, inclusive bound),
            ``integer`` (exact).
        description: What the OpenAPI page says about it.
        resolve: Optional map of the given text to the stored value (``latest`` → a model id).
    """

    param: str
    field: str
    kind: FilterKind
    description: str
    resolve: Callable[[str], str] | None = None

    def criterion(self, value: Any) -> tuple[str, Any]:
        """``(field, condition)`` for a given value; raises a 400 for a bad one."""
        if self.kind == "element":
            if value not in THREE_D_METALS:
                raise bad_request(
                    f"{self.param} must be one of {', '.join(THREE_D_METALS)}, not {value!r}"
                )
            return self.field, value
        if self.kind == "text":
            if not SAFE_TEXT.match(value):
                raise bad_request(
                    f"{self.param} may hold letters, digits and _.:#+()[]{{}}- only (≤ 200)"
                )
            return self.field, self.resolve(value) if self.resolve else value
        if self.kind in ("min", "max"):
            if not math.isfinite(value):
                raise bad_request(f"{self.param} must be a finite number, not {value}")
            return self.field, {"$gte" if self.kind == "min" else "$lte": value}
        return self.field, value


def bad_request(message: str) -> HTTPException:
    """The 400 every rejected parameter gets."""
    return HTTPException(status_code=400, detail=message)


def range_filters(field: str, what: str, unit: str = "dimensionless") -> list[Filter]:
    """``{field}_min`` and ``{field}_max``: inclusive bounds on a number."""
    return [
        Filter(f"{field}_min", field, "min", f"Lowest {what} ({unit}), inclusive."),
        Filter(f"{field}_max", field, "max", f"Highest {what} ({unit}), inclusive."),
    ]


class FilterQuery(QueryOperator):
    """The filters of one resource, as typed, documented query parameters."""

    def __init__(self, filters: list[Filter]):
        self.filters = filters
        by_param = {f.param: f for f in filters}

        def query(**values: Any) -> STORE_PARAMS:
            criteria: dict[str, Any] = {}
            for param, value in values.items():
                if value is None:
                    continue
                field, condition = by_param[param].criterion(value)
                if isinstance(condition, dict) and isinstance(criteria.get(field), dict):
                    criteria[field].update(condition)
                else:
                    criteria[field] = condition
            return {"criteria": criteria}

        query.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter(
                    f.param,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=Query(None, description=f.description),
                    annotation=_ANNOTATIONS[f.kind],
                )
                for f in filters
            ]
        )
        self.query = query  # type: ignore[method-assign]

    def query(self) -> STORE_PARAMS:  # replaced per instance in __init__
        """Stub: the instance's query function is built from its filters."""
        return {}


class SortQuery(QueryOperator):
    """``_sort_fields``: comma-separated fields of ``allowed``, ``-`` for descending."""

    def __init__(self, allowed: list[str]):
        self.allowed = allowed
        listed = ", ".join(allowed)

        def query(
            _sort_fields: str | None = Query(
                None,
                description=f"Comma-separated fields to sort by, '-' in front for descending "
                f"(e.g. -sams). Allowed: {listed}.",
            ),
        ) -> STORE_PARAMS:
            if not _sort_fields:
                return {}
            sort: dict[str, int] = {}
            for entry in _sort_fields.split(","):
                name = entry.strip().removeprefix("-")
                if name not in allowed:
                    raise bad_request(f"cannot sort by {name!r}; allowed: {listed}")
                sort[name] = -1 if entry.strip().startswith("-") else 1
            return {"sort": sort}

        self.query = query  # type: ignore[method-assign]

    def query(self) -> STORE_PARAMS:  # replaced per instance in __init__
        """Stub: the instance's query function is built in ``__init__``."""
        return {}


class FieldsQuery(QueryOperator):
    """``_fields`` / ``_all_fields``: which fields of the document to return."""

    def __init__(self, model: type[BaseModel], default_fields: list[str]):
        self.model = model
        self.default_fields = default_fields
        names = list(model.model_fields)

        def query(
            _fields: str | None = Query(
                None,
                description="Comma-separated fields to return (dotted paths into a field "
                f"allowed, e.g. sweep.5.QAMS). Default: {', '.join(default_fields)}. "
                f"Fields: {', '.join(names)}.",
            ),
            _all_fields: bool = Query(False, description="Return every field."),
        ) -> STORE_PARAMS:
            if _all_fields:
                return {"properties": names}
            if not _fields:
                return {"properties": list(default_fields)}
            properties = [entry.strip() for entry in _fields.split(",") if entry.strip()]
            for path in properties:
                if not FIELD_PATH.match(path) or path.split(".")[0] not in names:
                    raise bad_request(f"unknown field {path!r}; fields: {', '.join(names)}")
            return {"properties": properties}

        self.query = query  # type: ignore[method-assign]

    def query(self) -> STORE_PARAMS:  # replaced per instance in __init__
        """Stub: the instance's query function is built in ``__init__``."""
        return {}

    def meta(self) -> dict[str, Any]:
        """The default projection, in the response's ``meta``."""
        return {"default_fields": self.default_fields}


class PageQuery(QueryOperator):
    """Paging: ``_page``/``_per_page`` (1-based pages) or ``_skip``/``_limit``."""

    def __init__(self, default_limit: int = 100, max_limit: int = 1000):
        self.default_limit = default_limit
        self.max_limit = max_limit

        def query(
            _page: int | None = Query(
                None, ge=1, description="Page number, from 1 (wins over _skip and _limit)."
            ),
            _per_page: int = Query(
                default_limit, ge=1, le=max_limit, description=f"Documents per page, ≤ {max_limit}."
            ),
            _skip: int = Query(0, ge=0, description="Documents to skip."),
            _limit: int = Query(
                default_limit,
                ge=1,
                le=max_limit,
                description=f"Documents to return, ≤ {max_limit}.",
            ),
        ) -> STORE_PARAMS:
            if _page is not None:
                return {"skip": (_page - 1) * _per_page, "limit": _per_page}
            return {"skip": _skip, "limit": _limit}

        self.query = query  # type: ignore[method-assign]

    def query(self) -> STORE_PARAMS:  # replaced per instance in __init__
        """Stub: the instance's query function is built in ``__init__``."""
        return {}

    def meta(self) -> dict[str, Any]:
        """The largest page, in the response's ``meta``."""
        return {"max_limit": self.max_limit}
