"""The candidates table: the newest model's predictions, with FEFF SAMS and space group beside.

The table is one snapshot in memory, read from ``predictions`` (newest model), ``xes`` and
``features`` and then filtered, counted, sorted and paged in Python. The embedded server takes
about a second per count or sorted query on 13,000 predictions (``benchmarks/api_throughput.py``),
and a page needs several; the snapshot takes a few seconds once and each page then milliseconds.
It is read again when a newer model or a new FEFF result appears (checked at most every
:data:`CHECK_INTERVAL_S` seconds) and at the latest after :data:`MAX_AGE_S` seconds. The REST
API (``/api/predictions/``) always queries the database itself.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from threading import Lock
from typing import Any

from maggma.core import Store

from vtc_fw import THREE_D_METALS
from vtc_fw.builders.train import latest_model
from vtc_fw.settings import ModelTarget

SORT_KEYS = ("sams", "sams_std", "feff_sams", "element", "formula", "record_key", "spacegroup")
"""Columns the table sorts by (``-`` in front: descending)."""

COLUMNS = (
    "record_key",
    "element",
    "formula",
    "spacegroup",
    "sams",
    "sams_std",
    "feff_sams",
    "in_domain",
)
"""Columns of a candidate row, in the order of the CSV download."""

MAX_PER_PAGE = 500
CHECK_INTERVAL_S = 10.0
MAX_AGE_S = 600.0
_PREDICTION_FIELDS = ["record_key", "element", "formula", "sams", "sams_std", "in_domain"]


class CandidateQueryError(ValueError):
    """A parameter of the candidates table is out of range (shown as a 400)."""


@dataclass(frozen=True)
class CandidateQuery:
    """What the user asked for: filters, sort and page.

    Args:
        element: Absorbing 3d element, or None for all.
        sams_min: Lowest predicted SAMS (inclusive), or None.
        sams_max: Highest predicted SAMS (inclusive), or None.
        sams_std_max: Largest tree spread (inclusive), or None.
        in_domain: True: in the training domain only; False: outside only; None: both.
        computed: True: only records with a FEFF SAMS; False: only without; None: both.
        sort: One of :data:`SORT_KEYS`, ``-`` in front for descending. Rows without a value
            in the sorted column (no FEFF SAMS, say) come last either way.
        page: 1-based page.
        per_page: Rows per page (≤ :data:`MAX_PER_PAGE`).
    """

    element: str | None = None
    sams_min: float | None = None
    sams_max: float | None = None
    sams_std_max: float | None = None
    in_domain: bool | None = True
    computed: bool | None = None
    sort: str = "-sams"
    page: int = 1
    per_page: int = 50

    def __post_init__(self) -> None:
        if self.element is not None and self.element not in THREE_D_METALS:
            raise CandidateQueryError(f"element must be one of {', '.join(THREE_D_METALS)}")
        if self.sort.removeprefix("-") not in SORT_KEYS:
            raise CandidateQueryError(f"sort must be one of {', '.join(SORT_KEYS)} (- for desc)")
        if self.page < 1 or not 1 <= self.per_page <= MAX_PER_PAGE:
            raise CandidateQueryError(f"page ≥ 1 and 1 ≤ per_page ≤ {MAX_PER_PAGE}")
        for name in ("sams_min", "sams_max", "sams_std_max"):
            value = getattr(self, name)
            if value is not None and not abs(value) < float("inf"):
                raise CandidateQueryError(f"{name} must be a finite number")

    @property
    def descending(self) -> bool:
        """Whether the sort is descending."""
        return self.sort.startswith("-")

    @property
    def sort_key(self) -> str:
        """The sorted column."""
        return self.sort.removeprefix("-")

    def with_changes(self, **changes: Any) -> CandidateQuery:
        """A copy with some fields changed (links to other pages and sorts)."""
        return replace(self, **changes)

    def as_params(self) -> dict[str, str]:
        """The query string of this selection (defaults left out, ``in_domain`` always in)."""
        params: dict[str, str] = {}
        defaults = CandidateQuery()
        for name, value in asdict(self).items():
            if value == getattr(defaults, name) and name != "in_domain":
                continue
            params[name] = "any" if value is None else str(value).lower()
        return params

    def keeps(self, row: Mapping[str, Any]) -> bool:
        """Whether ``row`` is in the selection."""
        sams, spread = row["sams"], row["sams_std"]
        return (
            (self.element is None or row["element"] == self.element)
            and (self.in_domain is None or row["in_domain"] == self.in_domain)
            and (self.computed is None or (row["feff_sams"] is not None) == self.computed)
            and (self.sams_min is None or sams >= self.sams_min)
            and (self.sams_max is None or sams <= self.sams_max)
            and (self.sams_std_max is None or spread <= self.sams_std_max)
        )


@dataclass
class CandidatePage:
    """One page of candidates and the counts the page shows."""

    rows: list[dict[str, Any]]
    total: int
    computed: int
    by_element: dict[str, int]
    model: dict[str, Any] | None
    query: CandidateQuery

    @property
    def pages(self) -> int:
        """Number of pages of the selection."""
        return max(1, -(-self.total // self.query.per_page))


@dataclass
class Snapshot:
    """The newest model's candidate rows as read at ``loaded_at``."""

    model: dict[str, Any] | None
    fingerprint: tuple
    rows: list[dict[str, Any]] = field(default_factory=list)
    loaded_at: float = field(default_factory=time.monotonic)
    checked_at: float = field(default_factory=time.monotonic)


class CandidateTable:
    """The candidates of the newest model.

    Read from the ``predictions``, ``xes``, ``features`` and ``models`` stores.
    """

    def __init__(self, stores: Mapping[str, Store]):
        self.stores = stores
        self._snapshot: Snapshot | None = None
        self._lock = Lock()

    def page(self, query: CandidateQuery) -> CandidatePage:
        """The rows of ``query``'s page, the selection's size and its counts."""
        snapshot = self.snapshot()
        selected = self._selected(snapshot, query)
        start = (query.page - 1) * query.per_page
        return CandidatePage(
            rows=selected[start : start + query.per_page],
            total=len(selected),
            computed=sum(row["feff_sams"] is not None for row in selected),
            by_element=_by_element(selected),
            model=snapshot.model,
            query=query,
        )

    def download(self, query: CandidateQuery) -> list[dict[str, Any]]:
        """Every row of the selection, in the table's order, with :data:`COLUMNS`."""
        rows = self._selected(self.snapshot(), query)
        return [{column: row.get(column) for column in COLUMNS} for row in rows]

    def newest_model(self) -> dict[str, Any] | None:
        """The newest successful SAMS model: id, feature set, target, ``last_updated``..."""
        return latest_model(self.stores["models"], target=ModelTarget.SAMS)

    def snapshot(self) -> Snapshot:
        """The current snapshot, read again when the data changed or it is too old."""
        with self._lock:
            now = time.monotonic()
            current = self._snapshot
            if current is not None and now - current.checked_at < CHECK_INTERVAL_S:
                return current
            model = self.newest_model()
            fingerprint = self._fingerprint(model)
            if (
                current is None
                or current.fingerprint != fingerprint
                or now - current.loaded_at > MAX_AGE_S
            ):
                current = Snapshot(model, fingerprint, self._load_rows(model))
                self._snapshot = current
            current.checked_at = now
            return current

    def _fingerprint(self, model: Mapping[str, Any] | None) -> tuple:
        """What changes when the table must be read again: the model, the FEFF results."""
        xes = self.stores["xes"]
        newest = next(
            iter(xes.query(properties=["last_updated"], sort={"last_updated": -1}, limit=1)), {}
        )
        return (
            model and model["model_id"],
            model and model.get("last_updated"),
            xes.count({"state": "successful"}),
            newest.get("last_updated"),
        )

    def _load_rows(self, model: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        if model is None:
            return []
        feff = {
            doc["record_key"]: doc["sams"]
            for doc in self.stores["xes"].query(
                {"state": "successful"}, properties=["record_key", "sams"]
            )
            if doc.get("sams") is not None
        }
        spacegroups = {
            doc["record_key"]: doc.get("spacegroup")
            for doc in self.stores["features"].query(
                {"state": "successful"}, properties=["record_key", "spacegroup"]
            )
        }
        rows = []
        for doc in self.stores["predictions"].query(
            {"model_id": model["model_id"], "state": "successful"}, properties=_PREDICTION_FIELDS
        ):
            row = {name: doc.get(name) for name in _PREDICTION_FIELDS}
            row["feff_sams"] = feff.get(row["record_key"])
            row["spacegroup"] = spacegroups.get(row["record_key"])
            rows.append(row)
        return rows

    @staticmethod
    def _selected(snapshot: Snapshot, query: CandidateQuery) -> list[dict[str, Any]]:
        kept = [row for row in snapshot.rows if query.keeps(row)]
        key = query.sort_key
        present = [row for row in kept if row.get(key) is not None]
        missing = [row for row in kept if row.get(key) is None]
        present.sort(key=lambda row: row["record_key"])  # ties: by record key, both directions
        present.sort(key=lambda row: row[key], reverse=query.descending)
        missing.sort(key=lambda row: (-(row["sams"] or 0), row["record_key"]))
        return present + missing


def _by_element(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(row["element"] for row in rows)
    return {element: counts[element] for element in THREE_D_METALS if counts[element]}
