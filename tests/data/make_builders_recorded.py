"""Record the real FEFF10 task documents that tests/test_builders.py replays.

Run from the repository root: ``nice .venv/bin/python tests/data/make_builders_recorded.py``.
It computes rock-salt NiO and CoO stretched along c by 0-5 % with vtc-fw's own FEFF engine
(feff10-rs, preset "smoke": real FEFF, cheap settings, SAMS not science), plus one task that
fails for real (a time budget too short for any FEFF stage), and writes the structures
documents and TaskDocuments to ``builders_recorded.json.gz``.
"""

import gzip
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from monty.json import jsanitize
from pymatgen.core import Lattice, Structure

from vtc_fw.documents.task import TaskDocument
from vtc_fw.errors import FeffRunError
from vtc_fw.feff.engine import compute_record_spectra
from vtc_fw.science.records import make_records

OUTPUT = Path(__file__).with_name("builders_recorded.json.gz")
ROCK_SALTS = {"NiO": ("Ni", 4.177), "CoO": ("Co", 4.26)}
STRETCHES = (0.0, 0.01, 0.02, 0.03, 0.04, 0.05)


def stretched_rock_salt(metal: str, a: float, stretch: float) -> Structure:
    """Conventional rock-salt cell stretched along c by ``stretch`` (fraction)."""
    return Structure(
        Lattice.tetragonal(a, a * (1 + stretch)),
        [metal] * 4 + ["O"] * 4,
        [
            [0, 0, 0],
            [0.5, 0.5, 0],
            [0.5, 0, 0.5],
            [0, 0.5, 0.5],
            [0.5, 0, 0],
            [0, 0.5, 0],
            [0, 0, 0.5],
            [0.5, 0.5, 0.5],
        ],
    )


def main() -> None:
    structures, tasks = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for formula, (metal, a) in ROCK_SALTS.items():
            for stretch in STRETCHES:
                structure_id = f"test:{formula}-c{round(stretch * 100)}pct"
                structure = stretched_rock_salt(metal, a, stretch)
                structures.append(
                    {
                        "structure_id": structure_id,
                        "structure": structure.as_dict(),
                        "source": "test",
                        "provenance": {
                            "made_by": "tests/data/make_builders_recorded.py",
                            "stretch_along_c": stretch,
                        },
                    }
                )
                (record,) = make_records(structure, structure_id)
                workdir = Path(scratch) / structure_id.replace(":", "_")
                spectra = compute_record_spectra(record, "smoke", workdir)
                print(structure_id, spectra.sams, f"{spectra.wall_s:.1f} s")
                tasks.append(TaskDocument.from_spectra(record.summary(), spectra.as_dict()))
        unlabelled = stretched_rock_salt("Ni", 4.177, 0.06)
        structures.append(
            {
                "structure_id": "test:NiO-c6pct",
                "structure": unlabelled.as_dict(),
                "source": "test",
                "provenance": {
                    "made_by": "tests/data/make_builders_recorded.py",
                    "stretch_along_c": 0.06,
                },
            }
        )
        (record,) = make_records(unlabelled, "test:NiO-c6pct")
        try:
            compute_record_spectra(record, "smoke", Path(scratch) / "timeout", timeout_s=1e-3)
        except FeffRunError as error:
            failed = TaskDocument.from_failure(
                record.key, "smoke", error.as_dict(), attempts=[a.as_dict() for a in error.attempts]
            )
            print(record.key, "failed:", error.reason)
            tasks.append(failed)
    recorded = {
        "recorded": datetime.now(UTC).isoformat(),
        "structures": structures,
        "tasks": [task.model_dump(mode="json") for task in tasks],
    }
    with gzip.open(OUTPUT, "wt") as handle:
        json.dump(jsanitize(recorded), handle)
    print("wrote", OUTPUT)


if __name__ == "__main__":
    main()
