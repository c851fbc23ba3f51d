"""A database killed while a worker stores its result costs no FEFF work.

A private embedded server (its own home and port) is killed with SIGKILL just as
``InsertXesTask`` starts storing a real FEFF10 result ("smoke" preset, rock-salt NiO). The
worker retries for ``VTC_FW_STORE_RETRY_S``, fails, and leaves the Firework RUNNING with its
result kept by task key; after the server restarts, the documented recovery (``lpad
detect_lostruns --rerun``) and a new launch store that result without running FEFF again.
FireWorks' own Rocket runs the workflow in this process (``launch_rocket``), so the engine and
the storing step can be watched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fireworks import FWorker, LaunchPad
from fireworks.core.rocket_launcher import launch_rocket
from pymongo.errors import ConnectionFailure
from test_workflow import rock_salt

import vtc_fw.feff
from vtc_fw import firetasks
from vtc_fw.db.config import DbConfig
from vtc_fw.db.embedded import EmbeddedServer, free_port
from vtc_fw.db.kept_results import kept_result_path, mismatch, read_result
from vtc_fw.errors import DatabaseUnavailableError
from vtc_fw.science.records import make_records
from vtc_fw.workflow.maker import XesWorkflowMaker
from vtc_fw.workflow.worker import EXIT_DATABASE_UNAVAILABLE


@pytest.fixture
def private_server(tmp_path) -> EmbeddedServer:
    """An embedded server of this test alone, stopped (or found dead) at the end."""
    server = EmbeddedServer(home=tmp_path / "db", port=free_port(), cache_size="32M")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def impatient(monkeypatch, tmp_path) -> Path:
    """Short database retries and a private result directory (returned)."""
    results = tmp_path / "results"
    monkeypatch.setenv("VTC_FW_RESULT_DIR", str(results))
    monkeypatch.setenv("VTC_FW_STORE_RETRY_S", "2")
    monkeypatch.setattr(firetasks, "SELECTION_TIMEOUT_MS", 300)
    return results


def short_wait_launchpad(config: DbConfig) -> LaunchPad:
    """A LaunchPad that gives up on a dead server after 1 s (FireWorks' default: 30 s)."""
    return LaunchPad(
        host=config.host,
        port=config.port,
        name=config.database,
        mongoclient_kwargs={"serverSelectionTimeoutMS": 1000},
        strm_lvl="ERROR",
    )


def count_feff_runs(monkeypatch) -> list[str]:
    """Record each record the FEFF engine computes (the engine still runs)."""
    runs: list[str] = []
    engine = vtc_fw.feff.compute_record_spectra

    def counted(record, *args, **kwargs):
        runs.append(record.key)
        return engine(record, *args, **kwargs)

    monkeypatch.setattr(vtc_fw.feff, "compute_record_spectra", counted)
    return runs


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # FW's ping
def test_a_result_finished_before_the_database_died_is_stored_once_without_new_feff(
    private_server, impatient, tmp_path, monkeypatch
):
    config = DbConfig(host=private_server.host, port=private_server.port, database="restart")
    launchpad = short_wait_launchpad(config)
    launchpad.reset("", require_password=False)
    workflow = XesWorkflowMaker(preset="smoke").make(rock_salt("Ni", 4.17), "restart:NiO", "Ni")
    launchpad.add_wf(workflow)
    key = workflow.metadata["task_key"]
    worker = FWorker(env={"db_file": str(config.write_db_json(tmp_path / "db.json"))})
    feff_runs = count_feff_runs(monkeypatch)
    store_task = firetasks.store_task
    server_pid = private_server.status().pid

    def killed_first(*args):
        if private_server.status().running:
            os.kill(server_pid, signal.SIGKILL)
            os.waitpid(server_pid, 0)
        return store_task(*args)

    monkeypatch.setattr(firetasks, "store_task", killed_first)
    monkeypatch.chdir((tmp_path / "first_launch").mkdir() or tmp_path / "first_launch")
    with pytest.raises(ConnectionFailure):  # FireWorks itself cannot record the launch
        launch_rocket(launchpad, worker, strm_lvl="CRITICAL")
    assert feff_runs == [key.rsplit(":", 1)[0]]
    kept = kept_result_path(key, impatient)
    assert kept.exists() and read_result(kept)["state"] == "successful"
    monkeypatch.setattr(firetasks, "store_task", store_task)

    private_server.start()  # the data of before the kill is all there
    tasks = config.collection("tasks")
    assert tasks.count_documents({}) == 0
    assert launchpad.fireworks.find_one({"spec.task_key": key})["state"] == "RUNNING"
    time.sleep(1.5)
    lost_launches, lost_fws, _ = launchpad.detect_lostruns(expiration_secs=1, rerun=True)
    assert len(lost_launches) == 1 and len(lost_fws) == 1

    monkeypatch.chdir((tmp_path / "rerun").mkdir() or tmp_path / "rerun")
    launch_rocket(launchpad, worker, strm_lvl="CRITICAL")
    assert feff_runs == [key.rsplit(":", 1)[0]]  # FEFF ran once, before the kill
    assert launchpad.fireworks.find_one({"spec.task_key": key})["state"] == "COMPLETED"
    (stored,) = tasks.find({"task_key": key})
    assert stored["state"] == "successful" and stored["sams"] < 1e-3  # cubic: isotropic
    completed = launchpad.launches.find_one({"state": "COMPLETED"})
    assert completed["action"]["stored_data"]["task_key"] == key
    assert completed["action"]["stored_data"]["resumed_from"] == str(kept)
    assert not kept.exists()  # stored, so no longer kept


def test_storing_gives_up_after_the_retry_window_with_one_line(impatient, tmp_path, monkeypatch):
    dead = DbConfig(host="127.0.0.1", port=free_port(), database="nowhere")
    outcome = {
        "state": "failed",
        "record_key": "dead:NiO:Ni",
        "preset": "smoke",
        "error": {"type": "FeffError", "reason": "feff_failed", "message": "no spectrum"},
    }
    firetasks.write_result(tmp_path / firetasks.RESULT_FILE, outcome)
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError) as refused:
        firetasks.InsertXesTask(db_file=str(dead.write_db_json(tmp_path / "db.json"))).run_task({})
    assert 2.0 <= time.monotonic() - started < 10.0
    message = str(refused.value)
    assert "\n" not in message and message.startswith("dead:NiO:Ni:smoke not stored")
    assert "tries over 2 s" in message and refused.value.reason == "db_unavailable"


@pytest.fixture(scope="module")
def nio_outcome(tmp_path_factory) -> tuple[dict, dict]:
    """A real smoke outcome of rock-salt NiO and its record's summary."""
    directory = tmp_path_factory.mktemp("kept")
    (record,) = make_records(rock_salt("Ni", 4.17), structure_id="kept:NiO", elements=["Ni"])
    spectra = vtc_fw.feff.compute_record_spectra(record, "smoke", directory / "w")
    outcome = {"state": "successful", "record": record.summary(), "spectra": spectra.as_dict()}
    firetasks.write_result(directory / "outcome.json.gz", outcome)
    return read_result(directory / "outcome.json.gz"), record.summary()


@pytest.mark.slow
def test_a_kept_result_is_used_only_for_its_own_record_preset_and_spectra(nio_outcome):
    outcome, record = nio_outcome
    assert mismatch(outcome, record, "smoke", "sigma") is None
    assert "another record" in mismatch(outcome, {**record, "spacegroup": 221}, "smoke", "sigma")
    other_preset = mismatch(outcome, record, "paper", "sigma")
    assert other_preset.endswith("instead of ('kept:NiO:Ni', 'paper', 'sigma')")
    other_route = mismatch(outcome, record, "smoke", "axes")
    assert other_route.endswith("instead of ('kept:NiO:Ni', 'smoke', 'axes')")
    forged = {**outcome, "spectra": {**outcome["spectra"], "sams": 0.9}}
    assert "SAMS does not follow" in mismatch(forged, record, "smoke", "sigma")
    mu = [[2 * value for value in outcome["spectra"]["mu"][0]], *outcome["spectra"]["mu"][1:]]
    forged = {**outcome, "spectra": {**outcome["spectra"], "mu": mu}}
    assert "SAM does not follow" in mismatch(forged, record, "smoke", "sigma")
    assert "not a successful" in mismatch({**outcome, "state": "failed"}, record, "smoke", "sigma")


@pytest.mark.slow
def test_a_rerun_ignores_a_kept_result_of_another_structure_and_computes(
    nio_outcome, impatient, tmp_path, monkeypatch
):
    outcome, _ = nio_outcome
    squeezed = rock_salt("Ni", 4.0)  # the structure of "kept:NiO" changed since
    key = "kept:NiO:Ni:smoke"
    impatient.mkdir()
    firetasks.write_result(kept_result_path(key, impatient), outcome)
    feff_runs = count_feff_runs(monkeypatch)
    monkeypatch.chdir(tmp_path)
    task = firetasks.RunXesTask(
        structure=squeezed.as_dict(), structure_id="kept:NiO", element="Ni", preset="smoke"
    )
    action = task.run_task({})
    assert feff_runs == ["kept:NiO:Ni"]
    assert "computed for another record" in action.stored_data["kept_result_ignored"]
    rerun = firetasks.RunXesTask(
        structure=squeezed.as_dict(), structure_id="kept:NiO", element="Ni", preset="smoke"
    ).run_task({})
    assert feff_runs == ["kept:NiO:Ni"]  # the new result is its own: resumed, not recomputed
    assert rerun.stored_data["resumed_from"] == str(kept_result_path(key, impatient))


def test_a_worker_without_database_stops_with_one_line_and_no_traceback(tmp_path):
    launchpad_file = tmp_path / "my_launchpad.yaml"
    dead = {"host": "127.0.0.1", "port": free_port(), "name": "nowhere"}
    launchpad_file.write_text(
        yaml.safe_dump({**dead, "mongoclient_kwargs": {"serverSelectionTimeoutMS": 500}})
    )
    fworker_file = tmp_path / "my_fworker.yaml"
    FWorker(name="stranded").to_file(str(fworker_file))
    worker = subprocess.run(
        [
            *(sys.executable, "-m", "vtc_fw.workflow.worker"),
            *("-l", str(launchpad_file), "-w", str(fworker_file), "rapidfire"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert worker.returncode == EXIT_DATABASE_UNAVAILABLE
    assert "Traceback" not in worker.stdout + worker.stderr
    (line,) = [line for line in worker.stderr.splitlines() if "rlaunch stopped" in line]
    assert f"{dead['port']}: [Errno 111] Connection refused" in line
    assert "detect_lostruns --rerun" in line
