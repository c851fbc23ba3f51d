"""Number formatting of the pages: one precision per quantity, a dash for a missing value."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment

MISSING = "—"


def number(value: Any, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals; a dash for None or NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def significant(value: Any, digits: int = 3) -> str:
    """``value`` to ``digits`` significant figures (features spanning decades)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, bool | int):
        return number(value)
    return f"{value:.{digits}g}"


def flag(value: Any) -> str:
    """Yes / no / dash."""
    return MISSING if value is None else ("yes" if value else "no")


def timestamp(value: Any) -> str:
    """A UTC date and time to the minute."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return MISSING if value is None else str(value)


def record_url(record_key: str) -> str:
    """The record page of ``record_key`` (``#`` and other reserved characters escaped)."""
    return "/records/" + quote(record_key, safe=":")


def query_string(params: dict[str, Any]) -> str:
    """``?a=1&b=2`` of the non-empty parameters (empty string when none)."""
    kept = {k: v for k, v in params.items() if v is not None and v != ""}
    return "?" + urlencode(kept) if kept else ""


def register(environment: Environment) -> None:
    """Make the filters available to the templates."""
    environment.filters.update(
        number=number,
        significant=significant,
        flag=flag,
        timestamp=timestamp,
        record_url=record_url,
        query_string=query_string,
    )
