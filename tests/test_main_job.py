"""``vtc-fw run`` end to end on the test server: real FEFF (smoke preset), real rlaunch workers.

The smoke preset is real FEFF10 on a reduced cluster: its SAMS only proves the plumbing.
"""

import json
import os
import signal
import socket
import time

import pytest
import yaml
from click.testing import CliRunner

from vtc_fw.app.main_job import MainJobSettings, run_main_job
from vtc_fw.cli import main
from vtc_fw.workflow.local_workers import (
    LOCAL_WORKER_NAME,
    STOP_SIGNALS,
    requeue_lost_local_runs,
    stop_signals_interrupt,
    worker_files,
)


def test_worker_files_hold_absolute_paths(db_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    launchpad_file, fworker_file = worker_files(
        db_config,
        tmp_path.relative_to(tmp_path) / "cfg",
        tmp_path.relative_to(tmp_path) / "scratch",
    )
    assert launchpad_file.is_absolute() and fworker_file.is_absolute()
    env = yaml.safe_load(fworker_file.read_text())["env"]
    assert env["db_file"].startswith("/") and env["scratch_dir"].startswith("/")


@pytest.mark.slow
def test_main_job_computes_builds_and_resumes(db_config, tmp_path):
    messages: list[str] = []
    settings = MainJobSettings(
        n_new=2,
        workers=2,
        preset="smoke",
        n_iter=2,
        structures=20,
        reference_dir=tmp_path / "no_reference",
        run_dir=tmp_path / "run",
    )
    summary = run_main_job(db_config, settings, echo=messages.append)

    tasks = db_config.collection("tasks")
    assert tasks.count_documents({"state": "successful", "preset": "smoke"}) >= 2
    launchpad = db_config.launchpad()
    assert launchpad.fireworks.count_documents({"state": "COMPLETED"}) >= 2
    assert db_config.collection("xes").count_documents({"state": "successful"}) >= 2
    stored = db_config.collection("structures").count_documents({})
    assert stored >= 20
    features = db_config.collection("features")
    assert features.count_documents({}) >= stored
    assert summary["written"]["FeatureBuilder"] >= stored
    assert any("[5/5]" in message for message in messages)
    for task in tasks.find({"preset": "smoke"}, {"task_key": 1, "sams": 1}):
        key = task["task_key"]
        assert f"    new: {key}" in messages
        assert any(line.startswith(f"    {key}: SAMS {task['sams']:.3f}") for line in messages)

    db_file = db_config.write_db_json(tmp_path / "db.json")
    options = ["--n", "0", "--workers", "1", "--preset", "smoke", "--n-iter", "2"]
    options += ["--structures", "20", "--run-dir", str(tmp_path / "run"), "--json"]
    options += ["--reference-dir", str(tmp_path / "no_reference")]
    result = CliRunner().invoke(main, ["run", *options, "--db-file", str(db_file)])
    assert result.exit_code == 0, result.output
    assert "no FEFF work queued" in result.output
    again = json.loads(result.stdout[result.stdout.index("{\n") :])
    assert again["written"]["FeatureBuilder"] == 0 and again["written"]["XesBuilder"] == 0


@pytest.mark.slow
def test_a_record_over_the_time_limit_fails_and_the_run_goes_on(db_config, tmp_path):
    """Real FEFF ("paper") stopped after 1 s: the task stores the timeout, the run still ends."""
    messages: list[str] = []
    settings = MainJobSettings(
        n_new=1,
        workers=1,
        timeout_s=1.0,
        n_iter=2,
        structures=10,
        reference_dir=tmp_path / "no_reference",
        run_dir=tmp_path / "run",
    )
    summary = run_main_job(db_config, settings, echo=messages.append)

    (task,) = db_config.collection("tasks").find({})
    assert task["state"] == "failed" and task["error"]["reason"] == "timeout"
    assert "timed out" in task["error"]["message"]
    assert (
        f"    {task['task_key']}: failed (timeout); the task document has the message" in messages
    )
    (firework,) = db_config.launchpad().fireworks.find({}, {"state": 1})
    assert firework["state"] == "FIZZLED"  # stored as failed, not queued again by the next run
    assert summary["model_id"] is None and messages[-1].startswith("time: database")


def test_kill_and_hangup_interrupt_the_run_like_ctrl_c():
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        interrupted = pytest.raises(KeyboardInterrupt, match=signal.Signals(sig).name)
        with interrupted, stop_signals_interrupt():
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the handler raises before this ends
    assert {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} == before


def test_interrupted_local_runs_are_requeued(launchpad):
    from fireworks import Firework, ScriptTask

    firework = Firework(ScriptTask.from_str("true"), name="interrupted")
    launchpad.add_wf(firework)
    from fireworks import FWorker

    launchpad.checkout_fw(FWorker(name=LOCAL_WORKER_NAME), ".")
    launchpad.launches.update_many({}, {"$set": {"host": socket.gethostname()}})
    assert launchpad.fireworks.count_documents({"state": "RUNNING"}) == 1
    assert requeue_lost_local_runs(launchpad) == [firework.fw_id]
    assert launchpad.get_fw_by_id(firework.fw_id).state == "READY"


def test_main_job_trains_predicts_and_reports_on_recorded_feff_tasks(db_config, tmp_path):
    # tests/data/builders_recorded.json.gz: real FEFF (smoke) tasks made by our engine
    from test_builders import store_recorded

    data = store_recorded(db_config)
    messages: list[str] = []
    settings = MainJobSettings(
        n_new=0,
        workers=1,
        preset="smoke",
        n_iter=2,
        structures=5,
        reference_dir=tmp_path / "no_reference",
        run_dir=tmp_path / "run",
    )
    summary = run_main_job(db_config, settings, echo=messages.append)
    assert summary["model_id"] is not None
    assert set(summary["metrics"]) == {"r2_train", "r2_test", "mae_train", "mae_test"}
    assert summary["candidates"] and all("sams" in c for c in summary["candidates"])
    assert any(m.startswith("  out-of-fold on the training records: R² ") for m in messages)
    assert any("the paper (Materials Project" in m and "r2_test 0.7935" in m for m in messages)
    steps = {"FEFF", "features", "model", "predictions", "report"}
    assert steps <= set(summary["times"]) and messages[-1].startswith("time: database")
    report = tmp_path / "run" / "report"
    assert (report / "metrics.md").is_file() and (report / "predicted_vs_true.png").is_file()
    predictions = db_config.collection("predictions")
    assert predictions.count_documents({"model_id": summary["model_id"]}) >= len(data["tasks"]) - 1


def test_only_in_domain_affordable_structures_are_worth_computing():
    from vtc_fw.app.sampling import worth_computing
    from vtc_fw.sources import iter_oqmd_icsd

    by_id = {}
    for entry in iter_oqmd_icsd(limit=3000):
        by_id[entry.structure_id] = entry
    chosen = [e for e in by_id.values() if worth_computing(e)]
    assert chosen and len(chosen) < len(by_id)
    f_element = next(e for e in by_id.values() if "Ce" in e.structure.symbol_set)
    assert not worth_computing(f_element, max_sites=None)
    big = next(e for e in by_id.values() if len(e.structure) > 24)
    assert not worth_computing(big)
    for entry in chosen:
        assert len(entry.structure) <= 24 and entry.structure.is_ordered


def test_quick_structures_have_one_feff_site():
    from vtc_fw.app.sampling import QUICK_MAX_SITES, quick_to_compute, worth_computing
    from vtc_fw.science.records import inequivalent_site_count, make_records
    from vtc_fw.sources import iter_oqmd_icsd

    entries = [e for e in iter_oqmd_icsd(limit=1500) if worth_computing(e, QUICK_MAX_SITES)]
    quick = [e for e in entries if quick_to_compute(e)]
    assert quick and len(quick) < len(entries)
    for entry in quick[:5]:
        (record,) = make_records(entry)
        assert len(record.absorber_sites) == 1
    several = next(
        e
        for e in entries
        if len(e.three_d_metals) == 1
        and len(e.structure.symbol_set) <= 3
        and inequivalent_site_count(e.structure, e.three_d_metals[0]) > 1
    )
    (record,) = make_records(several)
    assert len(record.absorber_sites) == inequivalent_site_count(
        several.structure, several.three_d_metals[0]
    )
    assert not quick_to_compute(several)
