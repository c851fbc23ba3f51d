"""Experimentally observed 3d transition-metal structures from the Materials Project (mp-api).

The query is the paper's data set: summary documents with ``theoretical=False`` (an ICSD or other
experimental entry backs the material), not deprecated, GNoMe excluded, containing any 3d metal.
MP's ``elements`` filter means "contains all of these", so "any 3d metal" is one id query per
metal, merged. Structures are then fetched in chunks of material ids, with retries, and cached as
one JSON file per material id: a re-run downloads only the ids it has not seen.

It needs network access and an API key (``MP_API_KEY``, https://materialsproject.org/api): run it
where both exist; without them :class:`~vtc_fw.errors.SourceUnavailableError` says which is missing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

from pymatgen.core import Structure

from vtc_fw import THREE_D_METALS
from vtc_fw.errors import SourceUnavailableError
from vtc_fw.sources.entry import StructureEntry, json_safe, structure_summary

SOURCE = "mp"
MP_ENDPOINT = "https://api.materialsproject.org/"
MP_API_KEY_LENGTH = 32  # as checked by mp-api itself
MP_LICENCE = "CC-BY-4.0"
MP_CREDIT = (
    "Materials Project (materialsproject.org), CC-BY-4.0: A. Jain et al., APL Mater. 1, 011002 "
    "(2013)."
)
MP_FIELDS = (
    "material_id",
    "structure",
    "formula_pretty",
    "symmetry",
    "theoretical",
    "database_IDs",
    "energy_above_hull",
    "band_gap",
)
"""Summary-document fields stored in the cache and provenance."""

Result = TypeVar("Result")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/vtc-fw/mp`` (``~/.cache/vtc-fw/mp`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vtc-fw" / "mp"


@dataclass
class MPSource:
    """A Materials Project query for experimentally observed structures with a 3d metal.

    Args:
        api_key: MP API key; ``$MP_API_KEY`` or pymatgen's ``PMG_MAPI_KEY`` setting when None.
        elements: The metals of which a material must contain at least one.
        chunk_size: Material ids per request (and per page of the id queries).
        cache_dir: One ``<material_id>.json`` per downloaded summary document.
        max_retries: Attempts per request before giving up.
        retry_wait_s: Wait before the second attempt, doubled after each failure (s).
        endpoint: MP API address (a mirror or a test server); the public one when None.
    """

    api_key: str | None = None
    elements: Sequence[str] = THREE_D_METALS
    chunk_size: int = 1000
    cache_dir: Path = field(default_factory=default_cache_dir)
    max_retries: int = 3
    retry_wait_s: float = 2.0
    endpoint: str | None = None

    def __post_init__(self) -> None:
        if self.max_retries < 1 or self.chunk_size < 1:
            raise ValueError("max_retries and chunk_size must be at least 1")

    def query_kwargs(self) -> list[dict[str, Any]]:
        """``MPRester().materials.summary.search`` arguments of the id queries, one per metal."""
        return [
            {
                "elements": [metal],
                "theoretical": False,
                "deprecated": False,
                "include_gnome": False,
                "fields": ["material_id"],
                "all_fields": False,
                "chunk_size": self.chunk_size,
            }
            for metal in self.elements
        ]

    def fetch_kwargs(self, material_ids: Sequence[str]) -> dict[str, Any]:
        """The ``summary.search`` arguments that download one chunk of documents."""
        return {
            "material_ids": list(material_ids),
            "fields": list(MP_FIELDS),
            "all_fields": False,
            "chunk_size": self.chunk_size,
        }

    def resolve_api_key(self) -> str:
        """The API key to use.

        Raises:
            SourceUnavailableError: No key given, in ``$MP_API_KEY`` or in pymatgen's settings,
                or one of the wrong length.
        """
        from pymatgen.core import SETTINGS

        key = self.api_key or os.environ.get("MP_API_KEY") or SETTINGS.get("PMG_MAPI_KEY")
        if not key:
            raise SourceUnavailableError(
                "no Materials Project API key: pass api_key or set MP_API_KEY "
                "(get one at https://materialsproject.org/api)",
                reason="no_api_key",
            )
        if len(key) != MP_API_KEY_LENGTH:
            raise SourceUnavailableError(
                f"the Materials Project API key has {len(key)} characters, valid keys have "
                f"{MP_API_KEY_LENGTH} (get one at https://materialsproject.org/api)",
                reason="invalid_api_key",
            )
        return key

    def cache_path(self, material_id: str) -> Path:
        """Where the summary document of ``material_id`` is cached."""
        return Path(self.cache_dir) / f"{material_id}.json"

    def iter_entries(self) -> Iterator[StructureEntry]:
        """Query, download what the cache lacks, and yield entries sorted by material id.

        Raises:
            SourceUnavailableError: No API key, or the API unreachable after ``max_retries``.
        """
        api_key = self.resolve_api_key()
        rester = self._retry(lambda: self._open_rester(api_key), "connect")
        with rester:
            material_ids = self.material_ids(rester)
            self._download_missing(rester, material_ids)
        for material_id in material_ids:
            yield self._entry_from_cache(material_id)

    def material_ids(self, rester: Any) -> list[str]:
        """Ids of all materials the query matches (network), sorted."""
        found: set[str] = set()
        for kwargs in self.query_kwargs():
            documents = self._retry(_summary_search(rester, kwargs), "query")
            found.update(str(document["material_id"]) for document in documents)
        return sorted(found)

    def _download_missing(self, rester: Any, material_ids: Sequence[str]) -> None:
        missing = [mid for mid in material_ids if not self.cache_path(mid).is_file()]
        Path(self.cache_dir).mkdir(parents=True, exist_ok=True)
        for start in range(0, len(missing), self.chunk_size):
            kwargs = self.fetch_kwargs(missing[start : start + self.chunk_size])
            documents = self._retry(_summary_search(rester, kwargs), "fetch")
            for document in documents:
                self._write_cache(document, rester.db_version)

    def _write_cache(self, document: dict[str, Any], db_version: str | None) -> None:
        record = {
            "document": json_safe(document),
            "db_version": db_version,
            "endpoint": self.endpoint or MP_ENDPOINT,
            "retrieved_at": datetime.now(UTC).isoformat(),
        }
        path = self.cache_path(str(document["material_id"]))
        partial = path.with_suffix(".part")
        partial.write_text(json.dumps(record))
        partial.replace(path)  # atomic: an interrupted run never leaves a truncated cache file

    def _entry_from_cache(self, material_id: str) -> StructureEntry:
        structure_id = f"{SOURCE}:{material_id}"
        path = self.cache_path(material_id)
        provenance: dict[str, Any] = {"material_id": material_id, "cache_path": str(path)}
        try:
            record = json.loads(path.read_text())
            structure = Structure.from_dict(record["document"]["structure"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            message = f"no usable cached document for {material_id}: {error}"
            return StructureEntry(structure_id, None, SOURCE, provenance, error=message)
        provenance.update(self._provenance(record))
        provenance.update(structure_summary(structure))
        return StructureEntry(structure_id, structure, SOURCE, provenance)

    def _provenance(self, record: dict[str, Any]) -> dict[str, Any]:
        document = record["document"]
        symmetry = document.get("symmetry") or {}
        return {
            "formula_pretty": document.get("formula_pretty"),
            "spacegroup": symmetry.get("number"),
            "spacegroup_symbol": symmetry.get("symbol"),
            "theoretical": document.get("theoretical"),
            "database_IDs": document.get("database_IDs"),
            "energy_above_hull": document.get("energy_above_hull"),
            "band_gap": document.get("band_gap"),
            "db_version": record.get("db_version"),
            "endpoint": record.get("endpoint"),
            "retrieved_at": record.get("retrieved_at"),
            "query": {"theoretical": False, "deprecated": False, "any_of": list(self.elements)},
            "package": "mp-api",
            "package_version": version("mp-api"),
            "licence": MP_LICENCE,
            "credit": MP_CREDIT,
        }

    def _open_rester(self, api_key: str) -> Any:
        from mp_api.client import MPRester

        endpoint = self.endpoint or MP_ENDPOINT
        return MPRester(
            api_key=api_key,
            endpoint=endpoint if endpoint.endswith("/") else endpoint + "/",
            use_document_model=False,
            mute_progress_bars=True,
        )

    def _retry(self, request: Callable[[], Result], what: str) -> Result:
        """Run ``request``, retrying network and API errors with exponential back-off."""
        from mp_api.client.core.exceptions import MPRestError
        from requests.exceptions import RequestException

        wait_s = self.retry_wait_s
        for attempt in range(1, self.max_retries + 1):
            try:
                return request()
            except (RequestException, MPRestError) as error:
                last_error = error
                if attempt < self.max_retries:
                    time.sleep(wait_s)
                    wait_s *= 2
        raise SourceUnavailableError(
            f"Materials Project {what} failed at {self.endpoint or MP_ENDPOINT} after "
            f"{self.max_retries} attempts: {type(last_error).__name__}: {last_error}",
            reason="network",
        ) from last_error


def _summary_search(rester: Any, kwargs: dict[str, Any]) -> Callable[[], Any]:
    """The summary search with ``kwargs`` as a call for ``MPSource._retry`` (bound per request)."""
    return lambda: rester.materials.summary.search(**kwargs)
