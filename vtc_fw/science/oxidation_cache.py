"""Oxidation states of the OQMD-ICSD 3d-TM structures, computed once and shipped.

BVAnalyzer (then ``oxi_state_guesses``) is ~85 % of the cost of featurizing a structure; the
states depend on the structure alone, so vtc-fw computes them once with
:func:`vtc_fw.science.oxidation.assign_oxidation_states` and ships the result
(``vtc_fw/data/oqmd_icsd_oxidation.json.gz``), keyed by structure id with the reduced formula
and site count as a guard. Regenerate with ``python -m vtc_fw.science.oxidation_cache``.
"""

import argparse
import gzip
import json
from functools import lru_cache
from importlib import resources
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vtc_fw.science.oxidation import OxidationResult, assign_oxidation_states

CACHE_FILE = "oqmd_icsd_oxidation.json.gz"


def cache_path() -> Path:
    """Location of the shipped cache inside the installed package."""
    return Path(str(resources.files("vtc_fw") / "data" / CACHE_FILE))


def entry_oxidation(entry: Any) -> dict[str, Any]:
    """The cache row of one entry: method, charges, and the guards formula/n_sites."""
    return {
        "structure_id": entry.structure_id,
        "formula": entry.structure.composition.reduced_formula,
        "n_sites": len(entry.structure),
        **assign_oxidation_states(entry.structure).as_dict(),
    }


def load_cache(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The cache as ``{structure_id: row}``; empty when the file is absent."""
    path = path or cache_path()
    if not path.is_file():
        return {}
    with gzip.open(path, "rt") as handle:
        return {row["structure_id"]: row for row in json.load(handle)["rows"]}


def cached_oxidation(row: dict[str, Any] | None, structure: Any) -> OxidationResult | None:
    """The cached states of a structure, or None when absent or not for this structure."""
    if row is None or row["n_sites"] != len(structure):
        return None
    if row["formula"] != structure.composition.reduced_formula:
        return None
    return OxidationResult.from_dict(row)


@lru_cache(maxsize=1)
def _shipped_cache() -> dict[str, dict[str, Any]]:
    return load_cache()


def shipped_oxidation(structure_id: str, structure: Any) -> OxidationResult | None:
    """The shipped states of an OQMD-ICSD structure, or None for any other structure."""
    return cached_oxidation(_shipped_cache().get(structure_id), structure)


def build_cache(output: Path, workers: int = 2) -> int:
    """Compute the states of every OQMD-ICSD 3d-TM structure; returns the row count."""
    from vtc_fw.sources import iter_oqmd_icsd

    entries = [e for e in iter_oqmd_icsd() if e.structure is not None and e.structure.is_ordered]
    with get_context("forkserver").Pool(workers) as pool:
        rows = list(
            tqdm(
                pool.imap(entry_oxidation, entries, chunksize=16),
                total=len(entries),
                mininterval=10,
            )
        )
    from vtc_fw import __version__

    payload = {"generator": f"vtc_fw.science.oxidation_cache (vtc-fw {__version__})", "rows": rows}
    with gzip.open(output, "wt") as handle:
        json.dump(payload, handle, separators=(",", ":"))
    return len(rows)


def main() -> None:
    """``python -m vtc_fw.science.oxidation_cache [--output PATH] [--workers N]``."""
    parser = argparse.ArgumentParser(description="Regenerate the OQMD-ICSD oxidation cache.")
    parser.add_argument("--output", type=Path, default=cache_path())
    parser.add_argument("--workers", type=int, default=2)
    arguments = parser.parse_args()
    count = build_cache(arguments.output, arguments.workers)
    print(f"wrote {count} rows to {arguments.output}")


if __name__ == "__main__":
    main()
