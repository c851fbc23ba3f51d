"""CalibrationBuilder on our own committed labels: fitted once, refit when the pairs grow.

Task documents are recorded outputs of our real FEFF runs (data/reference_paper.jsonl.gz,
data/screen_scf/batch_001.jsonl.gz; feff10-rs 0.2.4, this project's engine).
"""

import base64
import gzip
import io
import json
import zipfile
from pathlib import Path

import pytest
from bson import json_util

from vtc_fw.app.main_job import store_oqmd_structures
from vtc_fw.builders import CalibrationBuilder, FeatureBuilder, run_builders
from vtc_fw.builders.train import load_estimator
from vtc_fw.ml.calibration import calibration_inputs

DATA = Path(__file__).resolve().parents[1] / "data"


def blob_inputs(store, model_id: str) -> list[str]:
    """The input names a stored blob's ``model.json`` holds (they are part of its id)."""
    data = base64.b64decode(store.query_one({"model_id": model_id})["data"])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return json.loads(archive.read("model.json"))["inputs"]


def tasks(path: Path) -> dict[str, dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        found = (json_util.loads(line) for line in handle)
        tasks = (t for t in found if "collection" not in t)  # skip the structures lines
        return {t["record_key"]: t for t in tasks if t["state"] == "successful"}


@pytest.fixture(scope="module")
def pairs():
    paper = tasks(DATA / "reference_paper.jsonl.gz")
    cheap = tasks(DATA / "screen_scf" / "batch_001.jsonl.gz")
    keys = sorted(set(paper) & set(cheap))[:36]
    return [(paper[k], cheap[k]) for k in keys]


def builders(db_config):
    features = db_config.store("features")
    return [
        FeatureBuilder(db_config.store("structures"), features),
        CalibrationBuilder(
            db_config.store("tasks"),
            features,
            db_config.store("calibrations"),
            db_config.gridfs_store("model_blobs"),
            repeats=1,
        ),
    ]


def insert(db_config, pairs):
    db_config.collection("tasks").insert_many([dict(t) for pair in pairs for t in pair])
    store_oqmd_structures(db_config, 0, lambda line: None)


def test_calibration_is_fitted_once_and_refit_when_the_paired_set_grows(db_config, pairs):
    assert run_builders(builders(db_config))["CalibrationBuilder"] == 0  # no pairs yet
    insert(db_config, pairs[:5])
    assert run_builders(builders(db_config))["CalibrationBuilder"] == 0  # too few to score
    insert(db_config, pairs[5:30])
    assert run_builders(builders(db_config))["CalibrationBuilder"] == 1
    first = db_config.collection("calibrations").find_one()
    assert first["cheap_preset"] == "screen_scf" and first["paper_preset"] == "paper"
    assert first["scores"]["n_pairs"] == 30
    storable = [s for s in first["scores"]["scores"] if s["method"] != "linear"]
    assert first["cv_mae"] == min(s["mae"] for s in storable)
    assert first["method"] == min(storable, key=lambda s: s["mae"])["method"]
    if first["method"] != "raw":
        store = db_config.gridfs_store("model_blobs")
        store.connect()
        assert load_estimator(store, first["calibration_id"]) is not None
        assert blob_inputs(store, first["calibration_id"]) == calibration_inputs(first["method"])
    assert run_builders(builders(db_config))["CalibrationBuilder"] == 0  # nothing new
    insert(db_config, pairs[30:])
    assert run_builders(builders(db_config))["CalibrationBuilder"] == 1
    newest = db_config.collection("calibrations").find_one(sort=[("last_updated", -1)])
    assert newest["scores"]["n_pairs"] == 36 and newest["pairs_hash"] != first["pairs_hash"]


@pytest.mark.slow
def test_cli_predict_cheap_calibrates_a_screen_scf_run(db_config, pairs, tmp_path):
    from click.testing import CliRunner

    from vtc_fw.app.distortion import nio_structure
    from vtc_fw.cli import main

    if db_config.collection("calibrations").count_documents({}) == 0:
        insert(db_config, pairs[:30])
        run_builders(builders(db_config))
    calibration = db_config.collection("calibrations").find_one(sort=[("last_updated", -1)])
    structure_file = tmp_path / "NiO_c3.cif"
    nio_structure(3.0).to(filename=str(structure_file))
    db_file = db_config.write_db_json(tmp_path / "db.json")
    command = ["predict", str(structure_file), "-e", "Ni", "--fidelity", "cheap", "--json"]
    outcome = CliRunner().invoke(main, [*command, "--db-file", str(db_file)])
    assert outcome.exit_code == 0, outcome.output
    answer = json.loads(outcome.stdout)
    assert answer["fidelity"] == "cheap" and answer["sams_cheap"] > 0
    assert answer["uncertainty"] == calibration["cv_mae"]
    assert calibration["calibration_id"][:12] in answer["produced_by"]
    if calibration["method"] == "raw":
        assert answer["sams"] == answer["sams_cheap"]


def test_the_cheap_preset_setting_chooses_what_is_calibrated_and_run(
    db_config, tmp_path, monkeypatch
):
    from click.testing import CliRunner

    from vtc_fw.app.distortion import nio_structure
    from vtc_fw.app.main_job import MainJobSettings
    from vtc_fw.builders import nightly_builders
    from vtc_fw.cli import main

    monkeypatch.setenv("VTC_FW_CHEAP_PRESET", "screen")
    cheap_preset = MainJobSettings().cheap_preset
    built = nightly_builders(db_config, cheap_preset=cheap_preset)
    calibration = [b for b in built if isinstance(b, CalibrationBuilder)]
    assert [b.cheap_preset for b in calibration] == ["screen"]
    db_config.collection("calibrations").insert_one({"cheap_preset": "screen_scf", "method": "raw"})
    structure_file = tmp_path / "NiO.cif"
    nio_structure(0.0).to(filename=str(structure_file))
    db_file = db_config.write_db_json(tmp_path / "db.json")
    command = ["predict", str(structure_file), "-e", "Ni", "--fidelity", "cheap"]
    outcome = CliRunner().invoke(main, [*command, "--db-file", str(db_file)])
    assert outcome.exit_code == 1
    assert "no screen calibration in the database" in outcome.output
