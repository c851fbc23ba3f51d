"""Site fingerprints of records from the structures of a database, and their cache file.

The field's standard local-environment descriptor (:mod:`vtc_fw.science.site_fingerprints`)
of chosen records, computed from the ``structures`` collection in worker processes: the outside
anchor of scripts/compare_models.py (``--site-fingerprints``). A JSON cache keeps them between
runs, stamped with the descriptor (:data:`~vtc_fw.science.site_fingerprints.FINGERPRINT`) so
that a cache of another descriptor is refused rather than mixed in.
"""

from __future__ import annotations

import json
import logging
from multiprocessing import Pool
from pathlib import Path
from typing import Any

from pymatgen.core import Structure

from vtc_fw.db.config import DbConfig
from vtc_fw.errors import UsageError
from vtc_fw.keys import parse_record_key
from vtc_fw.science.oxidation import OxidationResult
from vtc_fw.science.records import make_records
from vtc_fw.science.site_fingerprints import (
    FINGERPRINT,
    record_site_fingerprints,
    site_fingerprint_columns,
)

logger = logging.getLogger(__name__)

Fingerprints = dict[str, dict[str, float]]
"""Fingerprint columns by record key."""


def read_fingerprint_cache(path: Path) -> Fingerprints:
    """Cached fingerprints by record key (empty when the file does not exist).

    Raises:
        UsageError: The file holds another descriptor than :data:`FINGERPRINT`.
    """
    if not path.exists():
        return {}
    document = json.loads(path.read_text())
    if document.get("fingerprint") != FINGERPRINT:
        raise UsageError(f"{path} holds {document.get('fingerprint')!r}, not {FINGERPRINT!r}")
    records: Fingerprints = document["records"]
    return records


def write_fingerprint_cache(path: Path, fingerprints: Fingerprints) -> None:
    """Write fingerprints by record key, stamped with :data:`FINGERPRINT`."""
    document = {"fingerprint": FINGERPRINT, "records": fingerprints}
    path.write_text(json.dumps(document, indent=1) + "\n")


def cached_fingerprints(
    keys: list[str], config: DbConfig, cache_path: Path, processes: int = 1
) -> Fingerprints:
    """Fingerprints of the records ``keys``: from the cache, the others computed and cached.

    Raises:
        UsageError: matminer (the ``anchor`` extra) is missing, or the cache holds another
            descriptor.
    """
    site_fingerprint_columns()  # fails here, in one line, without the anchor extra
    cache = read_fingerprint_cache(cache_path)
    missing = sorted(set(keys) - set(cache))
    if missing:
        logger.info("site fingerprints of %d records", len(missing))
        cache.update(fingerprints_from_database(missing, config, processes))
        write_fingerprint_cache(cache_path, cache)
    return {key: cache[key] for key in keys if key in cache}


def fingerprints_from_database(
    keys: list[str], config: DbConfig, processes: int = 1
) -> Fingerprints:
    """Fingerprints of the records ``keys`` from their structures (``processes`` workers).

    A record whose structure is missing or cannot be featurized is left out (and logged).
    """
    elements: dict[str, list[str]] = {}
    for key in keys:
        structure_id, element = parse_record_key(key)
        elements.setdefault(structure_id, []).append(element)
    store = config.store("structures")
    store.connect()
    try:
        criteria = {"structure_id": {"$in": sorted(elements)}}
        documents = store.query(
            criteria=criteria, properties=["structure_id", "structure", "oxidation"]
        )
        items = [(document, elements[document["structure_id"]]) for document in documents]
    finally:
        store.close()
    with Pool(processes) as pool:
        found = pool.starmap(structure_fingerprints, items, chunksize=4)
    return {key: columns for by_key in found for key, columns in by_key.items()}


def structure_fingerprints(document: dict[str, Any], elements: list[str]) -> Fingerprints:
    """Fingerprints of the ``elements`` records of one structure document (none if unusable)."""
    oxidation = document.get("oxidation")
    try:
        records = make_records(
            Structure.from_dict(document["structure"]),
            document["structure_id"],
            elements=elements,
            oxidation=None if oxidation is None else OxidationResult.from_dict(oxidation),
        )
        return {record.key: record_site_fingerprints(record) for record in records}
    except Exception as error:  # one unusable structure must not stop the study
        logger.warning("%s: no site fingerprint (%s)", document["structure_id"], error)
        return {}
