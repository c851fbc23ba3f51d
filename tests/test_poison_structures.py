"""Poison structures are rejected before spglib sees them: one-line errors, failed documents.

spglib segfaults on a NaN lattice (issue 22's audit: it killed `vtc-fw features|sams`, an rlaunch
worker and `vtc-fw build`), and a negative lattice parameter gave a "successful" SAMS. Each case
here would crash the test process or pass silently without the geometry check.
"""

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from pymatgen.core import Lattice, Structure
from test_builders import memory_store

from vtc_fw.builders.features import FeatureBuilder
from vtc_fw.cli import main
from vtc_fw.errors import StructureError
from vtc_fw.science.records import inequivalent_site_count, make_records
from vtc_fw.sources import SAMPLE_DIR, StructureEntry
from vtc_fw.sources.dedupe import deduplicate
from vtc_fw.sources.geometry import MAX_SITES

MNO = SAMPLE_DIR / "907-2578-MnO.cif"


def _with_cell_length(value: str, tmp_path: Path) -> Path:
    text = MNO.read_text().splitlines()
    edited = [
        f"_cell_length_a {value}" if line.startswith("_cell_length_a") else line for line in text
    ]
    path = tmp_path / f"MnO_{value}.cif"
    path.write_text("\n".join(edited) + "\n")
    return path


def _rock_salt(matrix) -> Structure:
    return Structure(Lattice(matrix), ["Mn", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])


POISON = {
    "nan_lattice": (_rock_salt([[math.nan, 0, 0], [0, 4.4, 0], [0, 0, 4.4]]), "non_finite"),
    "inf_lattice": (_rock_salt([[math.inf, 0, 0], [0, 4.4, 0], [0, 0, 4.4]]), "non_finite"),
    "left_handed": (_rock_salt([[-4.4, 0, 0], [0, 4.4, 0], [0, 0, 4.4]]), "degenerate_lattice"),
    "flat": (_rock_salt([[4.4, 0, 0], [0, 4.4, 0], [4.4, 4.4, 0]]), "degenerate_lattice"),
    "zero_vector": (_rock_salt([[0, 0, 0], [0, 4.4, 0], [0, 0, 4.4]]), "degenerate_lattice"),
}


@pytest.mark.parametrize("name", sorted(POISON))
def test_make_records_rejects_poison_with_its_reason(name):
    structure, reason = POISON[name]
    with pytest.raises(StructureError) as error:
        make_records(structure, structure_id=name)
    assert error.value.reason == reason and name in str(error.value)
    with pytest.raises(StructureError):
        inequivalent_site_count(structure, "Mn")


def test_nan_coordinates_and_absurd_sizes_are_rejected():
    nan_site = _rock_salt(np.eye(3) * 4.4)
    nan_site.replace(1, "O", [0.5, math.nan, 0.5])
    with pytest.raises(StructureError, match="non-finite coordinate"):
        make_records(nan_site, structure_id="nan_site")
    huge = _rock_salt(np.eye(3) * 4.4) * (8, 8, 8)
    assert len(huge) > MAX_SITES
    with pytest.raises(StructureError) as error:
        make_records(huge, structure_id="huge")
    assert error.value.reason == "too_large"


def test_deduplication_passes_poison_over():
    entries = [StructureEntry(name, structure, "test") for name, (structure, _) in POISON.items()]
    result = deduplicate([*entries, *entries])
    assert len(result.unique) == 2 * len(entries)  # never compared, so never merged


@pytest.mark.parametrize("value", ["nan", "-4.44", "0"])
@pytest.mark.parametrize("command", ["features", "sams"])
def test_cli_gives_one_line_for_a_poison_cif(command, value, tmp_path):
    path = _with_cell_length(value, tmp_path)
    result = CliRunner().invoke(main, [command, str(path), "--element", "Mn"])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error:") and "Traceback" not in result.output


def test_feature_builder_stores_a_failed_document(tmp_path):
    structure, _ = POISON["nan_lattice"]
    now = datetime.now(UTC)
    item = {"structure_id": "poison", "structure": structure.as_dict(), "last_updated": now}
    builder = FeatureBuilder(
        memory_store("structures", "structure_id"), memory_store("features", "record_key")
    )
    documents = builder.process_item(item)
    assert documents[0]["state"] == "failed" and documents[0]["error"]["reason"] == "non_finite"
