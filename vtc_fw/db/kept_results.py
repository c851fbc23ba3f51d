"""Finished FEFF results kept on disk until their task document is in the database.

A worker writes each successful outcome twice before it stores anything: to the launch
directory (:data:`vtc_fw.firetasks.RESULT_FILE`) and, by task key, to the result directory
(``VTC_FW_RESULT_DIR``, default ``<home>/results``). The kept copy is removed once the task
document is stored. When the database stayed away and the Firework is rerun (in a new launch
directory), the rerun finds the copy by its task key and stores it instead of running FEFF
again, but only after checking that it belongs to the Firework: the same record (rebuilt from
the spec's structure), preset and engine route, and spectra whose SAM follows from their μ.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from monty.json import jsanitize

from vtc_fw.documents.task import TaskDocument
from vtc_fw.science.anisotropy import sam_matrix
from vtc_fw.settings import get_settings


def write_result(path: Path, outcome: dict[str, Any]) -> None:
    """Write an outcome as gzipped JSON, atomically (a killed worker leaves no half file).

    Raises:
        OSError: The file could not be written (the partial file is removed).
    """
    partial = path.with_name(path.name + ".part")
    try:
        with gzip.open(partial, "wt") as handle:
            json.dump(jsanitize(outcome, strict=False, allow_bson=False), handle)
    except OSError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)


def read_result(path: Path) -> dict[str, Any]:
    """Read an outcome written by :func:`write_result`."""
    with gzip.open(path, "rt") as handle:
        return json.load(handle)


def kept_result_path(task_key: str, directory: Path | None = None) -> Path:
    """The file that keeps the result of ``task_key`` (a readable name plus a short hash).

    Args:
        task_key: ``"{structure_id}:{element}:{preset}"``.
        directory: The result directory (default: the settings' ``result_path``).
    """
    directory = get_settings().result_path if directory is None else directory
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", task_key)[:100]
    digest = hashlib.sha256(task_key.encode()).hexdigest()[:12]
    return directory / f"{readable}-{digest}.json.gz"


def keep_result(task_key: str, outcome: dict[str, Any]) -> Path:
    """Keep a successful outcome by task key until it is stored.

    Raises:
        OSError: The result directory cannot be written.
    """
    path = kept_result_path(task_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_result(path, outcome)
    return path


def forget_result(task_key: str) -> None:
    """Remove the kept result of ``task_key`` (its task document is stored)."""
    kept_result_path(task_key).unlink(missing_ok=True)


def resumable_result(
    task_key: str, record: dict[str, Any], route: str
) -> tuple[dict[str, Any] | None, str | None]:
    """The kept result of ``task_key`` if it belongs to this record and route.

    Args:
        task_key: The Firework's task key (its preset is the last part).
        record: ``Record.summary()`` of the record rebuilt from the Firework's structure.
        route: The Firework's engine route (``"sigma"`` or ``"axes"``).

    Returns:
        ``(outcome, None)`` to resume from, or ``(None, why)`` when nothing usable is kept
        (``why`` is None when there is no file at all).
    """
    path = kept_result_path(task_key)
    if not path.exists():
        return None, None
    try:
        outcome = read_result(path)
    except (OSError, EOFError, ValueError) as error:
        return None, f"unreadable kept result {path}: {error}"
    preset = task_key.rsplit(":", 1)[-1]
    why = mismatch(outcome, record, preset, route)
    if why is not None:
        return None, f"kept result {path} ignored: {why}"
    return outcome, None


def mismatch(outcome: Any, record: dict[str, Any], preset: str, route: str) -> str | None:
    """Why a kept outcome is not the result of this record, preset and route (None: it is).

    Checks that it is successful, was computed for this very record (its summary: key,
    formula, space group, oxidation method, basis, absorbing sites), preset and route, makes
    a valid task document, and that its SAM and SAMS follow from its spectra.
    """
    if not isinstance(outcome, dict) or outcome.get("state") != "successful":
        return "not a successful result"
    spectra = outcome.get("spectra")
    if not isinstance(spectra, dict):
        return "no spectra"
    if outcome.get("record") != json.loads(json.dumps(jsanitize(record))):
        return f"computed for another record than {record['record_key']} (structure changed?)"
    found = (spectra.get("record_key"), spectra.get("preset"), spectra.get("route"))
    if found != (record["record_key"], preset, route):
        return f"record, preset, route {found} instead of {(record['record_key'], preset, route)}"
    try:
        TaskDocument.from_spectra(outcome["record"], spectra)
        return _spectra_mismatch(spectra)
    except (KeyError, TypeError, ValueError) as error:
        return f"not a task document ({type(error).__name__}: {error})"


def _spectra_mismatch(spectra: dict[str, Any]) -> str | None:
    """Why the SAM and SAMS do not follow from the spectra (None: they do)."""
    energies = np.asarray(spectra["energies"], dtype=float)
    mu = np.asarray(spectra["mu"], dtype=float)
    if mu.shape != (3, energies.size) or energies.size < 2:
        return f"spectra of shape {mu.shape} on {energies.size} energies"
    if not (np.isfinite(energies).all() and np.isfinite(mu).all()):
        return "non-finite spectra"
    sam = sam_matrix(energies, mu)
    stated = np.asarray(spectra["sam"], dtype=float)
    if not np.allclose(sam, stated, rtol=1e-9, atol=1e-12):
        return "its SAM does not follow from its spectra"
    if not np.isclose(np.triu(sam, k=1).sum(), float(spectra["sams"]), rtol=1e-9, atol=1e-12):
        return "its SAMS does not follow from its SAM"
    return None
