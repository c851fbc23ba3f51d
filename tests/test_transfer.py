"""Export and import of task documents and their structures (``.jsonl.gz``).

Lossless and idempotent. The successful task comes from a real FEFF10 run ("smoke" preset,
rock-salt NiO) made by the workflow's own FireTask in this test; the failed one from a
structure the records refuse.
"""

from __future__ import annotations

import gzip
import json
from contextlib import chdir
from pathlib import Path

import pytest
from click.testing import CliRunner
from pymatgen.core import Lattice, Structure

from vtc_fw.app.transfer import (
    export_tasks,
    fill_missing_structures,
    import_tasks,
    read_transfer_file,
)
from vtc_fw.cli import main
from vtc_fw.documents.task import ensure_task_indexes, insert_task
from vtc_fw.errors import TransferError
from vtc_fw.firetasks import RESULT_FILE, RunXesTask, read_result, task_document
from vtc_fw.sources import StructureEntry
from vtc_fw.workflow.submission import structure_document

REFERENCE_FAST = Path(__file__).parents[1] / "data" / "reference_fast.jsonl.gz"
"""A committed export of an older vtc-fw: 15 OQMD-ICSD tasks, no structure lines."""


def _run_record(structure: Structure, structure_id: str, element: str, directory: Path) -> dict:
    directory.mkdir()
    task = RunXesTask(
        structure=structure.as_dict(), structure_id=structure_id, element=element, preset="smoke"
    )
    with chdir(directory):
        task.run_task({})
    return task_document(read_result(directory / RESULT_FILE)).as_mongo()


@pytest.fixture(scope="module")
def task_documents(tmp_path_factory) -> list[dict]:
    """One successful (real FEFF) and one failed task document."""
    root = tmp_path_factory.mktemp("transfer_runs")
    nio = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.17), ["Ni", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    ).get_primitive_structure()
    disordered = nio.copy()
    disordered.replace_species({"Ni": {"Ni": 0.5, "Mg": 0.5}})
    return [
        _run_record(nio, "transfer:NiO", "Ni", root / "nio"),
        _run_record(disordered, "transfer:NiMgO", "Ni", root / "nimgo"),
    ]


def _filled(db_config, documents) -> None:
    tasks = db_config.collection("tasks")
    ensure_task_indexes(tasks)
    for document in documents:
        insert_task(tasks, document)


def test_export_then_import_elsewhere_reproduces_every_document(
    db_config, mongo_server, task_documents, tmp_path
):
    _filled(db_config, task_documents)
    path = tmp_path / "tasks.jsonl.gz"
    assert export_tasks(db_config, path) == {"tasks": 2, "structures": 0, "without_structure": 2}
    with gzip.open(path, "rt") as handle:
        lines = [json.loads(line) for line in handle]
    assert {line["record_key"] for line in lines} == {"transfer:NiO:Ni", "transfer:NiMgO:Ni"}

    target = db_config.with_database(db_config.database + "_copy")
    try:
        counts = import_tasks(target, path)
        assert counts == {**dict.fromkeys(counts, 0), "inserted": 2}
        source_tasks = db_config.collection("tasks")
        for copied in target.collection("tasks").find({}, {"_id": False}):
            original = source_tasks.find_one({"task_key": copied["task_key"]}, {"_id": False})
            assert copied == original  # spectra, dates, errors: all survive the round trip
    finally:
        target.client().drop_database(target.database)


def test_importing_twice_adds_nothing_and_keeps_successes(db_config, task_documents, tmp_path):
    _filled(db_config, task_documents)
    path = tmp_path / "tasks.jsonl.gz"
    export_tasks(db_config, path, {"state": "successful"})
    counts = import_tasks(db_config, path)
    assert counts == {**dict.fromkeys(counts, 0), "kept_successful": 1}
    assert import_tasks(db_config, path, replace=True)["replaced"] == 1
    assert import_tasks(db_config, path)["inserted"] == 0
    assert db_config.collection("tasks").count_documents({}) == 2
    successful = task_documents[0]
    late = {"type": "FeffError", "reason": "feff_failed", "message": "late"}
    failed_copy = {**successful, "state": "failed", "error": late}
    stale = tmp_path / "stale.jsonl.gz"
    with gzip.open(stale, "wt") as handle:
        handle.write(json.dumps(failed_copy, default=str) + "\n")
    assert import_tasks(db_config, stale)["kept_successful"] == 1
    kept = db_config.collection("tasks").find_one({"task_key": successful["task_key"]})
    assert kept["state"] == "successful"


def test_a_malformed_line_is_reported_with_its_number(db_config, tmp_path):
    path = tmp_path / "bad.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write('{"task_key": "a:Ni:smoke"}\n')
    with pytest.raises(TransferError, match="line 1"):
        import_tasks(db_config, path)


def test_cli_export_and_import(db_config, task_documents, tmp_path):
    _filled(db_config, task_documents)
    db_file = db_config.write_db_json(tmp_path / "db.json")
    path = tmp_path / "failed.jsonl.gz"
    runner = CliRunner()
    exported = runner.invoke(
        main,
        ["export", str(path), "--query", '{"state": "failed"}', "--db-file", str(db_file)],
    )
    assert exported.exit_code == 0, exported.output
    assert "exported 1 task documents" in exported.output
    imported = runner.invoke(main, ["import", str(path), "--db-file", str(db_file)])
    assert imported.exit_code == 0, imported.output
    assert "0 inserted, 1 replaced" in imported.output


def _write_lines(path, documents) -> None:
    with gzip.open(path, "wt") as handle:
        for document in documents:
            handle.write(json.dumps(document, default=str) + "\n")


def test_an_imported_success_never_overwrites_a_computed_one(db_config, task_documents, tmp_path):
    """The audit's case: an imported "successful" task with SAMS 99 replaced a real result."""
    _filled(db_config, task_documents)
    real = next(t for t in task_documents if t["state"] == "successful")
    forged = tmp_path / "forged.jsonl.gz"
    _write_lines(forged, [{**real, "sams": 99.0}])
    assert import_tasks(db_config, forged)["kept_successful"] == 1
    stored = db_config.collection("tasks").find_one({"task_key": real["task_key"]})
    assert stored["sams"] == real["sams"]


def test_a_task_whose_key_does_not_match_its_content_is_rejected(
    db_config, task_documents, tmp_path
):
    real = task_documents[0]
    lying = tmp_path / "lying.jsonl.gz"
    _write_lines(lying, [real, {**real, "task_key": "oqmd-icsd:other:Fe:paper"}])
    with pytest.raises(TransferError, match="line 2: keys"):
        import_tasks(db_config, lying)
    assert db_config.collection("tasks").count_documents({}) == 0  # all or nothing


@pytest.mark.parametrize("damage", ["truncated", "not_gzip"])
def test_a_damaged_file_imports_nothing_and_says_so_in_one_line(
    db_config, task_documents, tmp_path, damage
):
    whole = tmp_path / "whole.jsonl.gz"
    _write_lines(whole, task_documents)
    damaged = tmp_path / f"{damage}.jsonl.gz"
    data = whole.read_bytes()
    damaged.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"plain text\n")
    with pytest.raises(TransferError, match="nothing imported"):
        import_tasks(db_config, damaged)
    assert db_config.collection("tasks").count_documents({}) == 0
    db_file = db_config.write_db_json(tmp_path / "db.json")
    result = CliRunner().invoke(main, ["import", str(damaged), "--db-file", str(db_file)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error:")


# --- structures travel with their tasks ------------------------------------------------------


def _structures_of(documents: list[dict]) -> list[dict]:
    """The structures documents that ``vtc-fw submit`` would have stored for these tasks."""
    nio = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.17), ["Ni", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    ).get_primitive_structure()
    return [
        structure_document(StructureEntry(task["structure_id"], nio, "cif-dir"))
        for task in documents
    ]


def test_each_structure_travels_once_before_its_tasks(
    db_config, mongo_server, task_documents, tmp_path
):
    _filled(db_config, task_documents)
    structures = db_config.collection("structures")
    structures.insert_many(_structures_of(task_documents))
    path = tmp_path / "whole.jsonl.gz"
    assert export_tasks(db_config, path) == {"tasks": 2, "structures": 2, "without_structure": 0}
    with gzip.open(path, "rt") as handle:
        lines = [json.loads(line) for line in handle]
    seen: set[str] = set()
    for line in lines:  # a structure line comes before the tasks of its structure
        if "collection" in line:
            seen.add(line["document"]["structure_id"])
        else:
            assert line["structure_id"] in seen

    target = db_config.with_database(db_config.database + "_whole")
    try:
        counts = import_tasks(target, path)
        assert counts["inserted"] == 2 and counts["structures_inserted"] == 2
        for copied in target.collection("structures").find({}, {"_id": False}):
            original = structures.find_one({"structure_id": copied["structure_id"]}, {"_id": 0})
            # the import time is the structure's last_updated in the new database
            assert copied.pop("last_updated") >= original.pop("last_updated")
            assert copied == original
        # a second import keeps the stored structures
        assert import_tasks(target, path)["structures_kept"] == 2
        assert fill_missing_structures(target) == {"filled": 0, "missing": 0}
    finally:
        target.client().drop_database(target.database)


def test_an_unreadable_structure_line_imports_nothing(db_config, task_documents, tmp_path):
    path = tmp_path / "bad_structure.jsonl.gz"
    broken = {**_structures_of(task_documents[:1])[0], "structure": {"lattice": "cubic"}}
    _write_lines(path, [{"collection": "structures", "document": broken}, task_documents[0]])
    with pytest.raises(TransferError, match="line 1: structure 'transfer:NiO'"):
        import_tasks(db_config, path)
    assert db_config.collection("structures").count_documents({}) == 0
    assert db_config.collection("tasks").count_documents({}) == 0


def test_a_file_without_structures_gets_them_from_the_shipped_sources(db_config, tmp_path):
    """The committed data/ files (older exports) carry no structures; OQMD-ICSD has them all."""
    contents = read_transfer_file(REFERENCE_FAST)
    assert contents.structures == [] and len(contents.tasks) == 15
    db_file = db_config.write_db_json(tmp_path / "db.json")
    result = CliRunner().invoke(main, ["import", str(REFERENCE_FAST), "--db-file", str(db_file)])
    assert result.exit_code == 0, result.output
    wanted = {task.structure_id for task in contents.tasks}
    assert f"structures: {len(wanted)} filled from the shipped sources, 0 still missing" in (
        result.output
    )
    stored = db_config.collection("structures").find({}, {"structure_id": 1, "oxidation": 1})
    stored = list(stored)
    assert {doc["structure_id"] for doc in stored} == wanted
    # as `vtc-fw submit` stores them: with the shipped oxidation states
    assert all(doc["oxidation"] for doc in stored)
