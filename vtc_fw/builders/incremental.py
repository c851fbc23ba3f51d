"""Incremental bookkeeping shared by the builders: which keys have newer source data.

maggma's ``Store.newer_in`` compares one key per document; our builders map many source
documents to one target (tasks → xes per record) or one to many (structure → features per
record), so they compare the newest ``last_updated`` per group instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from maggma.core import Store


def as_utc(moment: datetime | str) -> datetime:
    """A timezone-aware UTC datetime (MongoDB returns naive UTC; maggma may return strings)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def newest_by(
    store: Store,
    field: str,
    criteria: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
) -> dict[str, datetime]:
    """The newest ``last_updated`` of the documents of ``store`` per value of ``field``.

    With ``parameters``, a value any of whose documents was built with other
    ``builder_meta.parameters`` is left out, so that :func:`stale_keys` rebuilds it.
    """
    lu_field = store.last_updated_field
    properties = [field, lu_field]
    if parameters is not None:
        properties.append("builder_meta.parameters")
    newest: dict[str, datetime] = {}
    outdated: set[str] = set()
    for doc in store.query(criteria=criteria or {}, properties=properties):
        if doc.get(field) is None or doc.get(lu_field) is None:
            continue
        if (
            parameters is not None
            and (doc.get("builder_meta") or {}).get("parameters") != parameters
        ):
            outdated.add(doc[field])
        moment = as_utc(doc[lu_field])
        if doc[field] not in newest or moment > newest[doc[field]]:
            newest[doc[field]] = moment
    return {key: moment for key, moment in newest.items() if key not in outdated}


def stale_keys(source: dict[str, datetime], target: dict[str, datetime]) -> list[str]:
    """Keys whose source data is newer than the target's, or that the target lacks (sorted)."""
    return sorted(
        key for key, moment in source.items() if key not in target or moment > target[key]
    )


def chunks(values: list[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive slices of ``values`` with at most ``size`` elements."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


IN_QUERY_BATCH = 200
"""Most values in one ``$in`` query. secantusdb's ``$in`` cost grows faster than linearly
(features by record_key on 13,302 documents: 100 keys 0.08 s, 1,000 keys 2 s, 5,000 keys
55 s), while MongoDB does not mind either way."""


def query_by_keys(
    store: Store,
    field: str,
    keys: list[Any],
    criteria: dict[str, Any] | None = None,
    properties: list[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Documents of ``store`` whose ``field`` is one of ``keys``, in ``$in`` batches.

    Args:
        store: A connected store.
        field: The (indexed) field matched against ``keys``.
        keys: Values of ``field`` wanted.
        criteria: Further conditions on the documents.
        properties: Only these fields of each document (default: all).
    """
    for batch in chunks(keys, IN_QUERY_BATCH):
        yield from store.query({**(criteria or {}), field: {"$in": batch}}, properties=properties)


def remove_by_keys(store: Store, field: str, keys: list[Any]) -> None:
    """Delete the documents of ``store`` whose ``field`` is one of ``keys``, in ``$in`` batches."""
    for batch in chunks(keys, IN_QUERY_BATCH):
        store.remove_docs({field: {"$in": batch}})


def newest(moments: Iterable[datetime]) -> datetime | None:
    """The latest of ``moments`` (UTC), None when empty."""
    moments = [as_utc(m) for m in moments]
    return max(moments) if moments else None
