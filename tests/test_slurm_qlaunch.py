"""``qlaunch`` through a real SLURM scheduler, and recovery of a job killed with ``scancel``.

The module starts a private single-node SLURM cluster (:mod:`slurm_cluster`; Debian packages,
installed when missing, else the tests skip) and submits jobs with the shipped queue adapter
(:data:`QADAPTER`, only its paths filled in) against the session's test database. The jobs run
real FEFF10 in ``rlaunch rapidfire`` (presets "smoke" and, for the killed job, "screen").

Checks: ``qlaunch rapidfire`` through ``sbatch`` completes every submitted record exactly once;
with a heartbeat of :data:`PING_TIME_S` s, ``lpad detect_lostruns --time`` :data:`LOST_AFTER_S`
leaves a live job's Firework alone however long it has run, and after ``scancel`` finds the
killed one, whose rerun in a new job leaves one successful task document.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from fireworks import FWorker, LaunchPad
from slurm_cluster import SlurmCluster, SlurmUnavailable, require_slurm

from vtc_fw.app.distortion import nio_structure
from vtc_fw.db.config import DbConfig
from vtc_fw.firetasks import RESULT_FILE
from vtc_fw.workflow.maker import XesWorkflowMaker
from vtc_fw.workflow.submission import open_source, submit_entries

REPO = Path(__file__).resolve().parents[1]
QADAPTER = REPO / "my_qadapter.yaml"
"""The shipped SLURM queue adapter."""
FW_CONFIG = REPO / "FW_config.yaml"
"""The shipped FireWorks settings (heartbeat and lost-run window of production)."""
PLACEHOLDER = "/path/to/vtc-fw"
"""The checkout path in the shipped queue adapter."""
BIN = Path(sys.executable).parent
PING_TIME_S = 1
"""Heartbeat of the test's workers (FW_config PING_TIME_SECS)."""
LOST_AFTER_S = 5
"""The test's ``detect_lostruns --time`` window: five heartbeats, as in production."""
JOB_TIMEOUT_S = 150.0
LIVE_PRESET = "screen"
"""Preset of the killed record: its FEFF (~10 CPU-s on NiO) must outlast LOST_AFTER_S."""


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    """A running private cluster for the module; skips when SLURM cannot run here."""
    try:
        require_slurm()
    except SlurmUnavailable as error:
        pytest.skip(f"no SLURM: {error}")
    # munged wants every folder above its socket open to all: not pytest's tmp_path.
    root = Path(tempfile.mkdtemp(prefix="vtc-fw-slurm-"))
    cluster = SlurmCluster(root)
    try:
        cluster.start()
    except SlurmUnavailable as error:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"SLURM does not start here: {error}")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Queue:
    """A test's submission side: config files, the launch folder and the commands."""

    cluster: SlurmCluster
    launch_dir: Path
    launchpad_file: Path
    fworker_file: Path
    qadapter_file: Path
    env: dict[str, str]

    def qlaunch(self, *args: str) -> str:
        """``qlaunch ... rapidfire ARGS`` in the launch folder; its output."""
        command = [str(BIN / "qlaunch"), *self._config_args(), "-q", str(self.qadapter_file)]
        return self._run([*command, "rapidfire", *args])

    def lpad(self, *args: str) -> str:
        """``lpad -l ... ARGS``; its output."""
        return self._run([str(BIN / "lpad"), "-l", str(self.launchpad_file), *args])

    def wait_for_jobs(self, timeout_s: float = JOB_TIMEOUT_S) -> None:
        """Wait until the cluster lists no job and no process of one is left."""
        wait_until(
            lambda: not self.cluster.job_ids() and not self.cluster.job_processes(),
            timeout_s,
            "the jobs to end",
            self.logs,
        )

    def logs(self) -> str:
        """The jobs' output and error files and the daemon logs, for failure messages."""
        parts = [
            f"--- {path.relative_to(self.launch_dir)}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.launch_dir.glob("block_*/launcher_*/vtc_fw-*"))
        ]
        return "\n".join([*parts, self.cluster.log_tails()])

    def _config_args(self) -> list[str]:
        return ["-l", str(self.launchpad_file), "-w", str(self.fworker_file)]

    def _run(self, command: list[str]) -> str:
        done = subprocess.run(
            command, cwd=self.launch_dir, env=self.env, capture_output=True, text=True, check=False
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{' '.join(command)}: {output}"
        return output


@pytest.fixture
def queue(slurm: SlurmCluster, db_config: DbConfig, launchpad: LaunchPad, tmp_path) -> Iterator:
    """The shipped queue adapter on the test's database, fast FireWorks timing; jobs cancelled
    after the test whatever happened."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    launchpad_file = db_config.write_launchpad_yaml(config_dir / "my_launchpad.yaml")
    fworker_file = config_dir / "my_fworker.yaml"
    db_file = db_config.write_db_json(config_dir / "db.json")
    FWorker(name="slurm_test_worker", env={"db_file": str(db_file)}).to_file(str(fworker_file))
    fw_config = config_dir / "FW_config.yaml"
    fw_config.write_text(
        yaml.safe_dump(
            {
                "PING_TIME_SECS": PING_TIME_S,
                "RUN_EXPIRATION_SECS": LOST_AFTER_S,
                "QUEUE_UPDATE_INTERVAL": 1,
                "RAPIDFIRE_SLEEP_SECS": 1,
            }
        )
    )
    launch_dir = tmp_path / "launches"
    launch_dir.mkdir()
    queue = Queue(
        cluster=slurm,
        launch_dir=launch_dir,
        launchpad_file=launchpad_file,
        fworker_file=fworker_file,
        qadapter_file=write_qadapter(config_dir / "my_qadapter.yaml", launchpad_file, fworker_file),
        env=outside_the_venv(slurm.env) | {"FW_CONFIG_FILE": str(fw_config)},
    )
    try:
        yield queue
    finally:
        slurm.cancel_jobs()


def with_checkout_paths(text: str) -> str:
    """Shipped configuration text with this checkout and its virtual environment filled in."""
    return text.replace(f"{PLACEHOLDER}/.venv", sys.prefix).replace(PLACEHOLDER, str(REPO))


def write_qadapter(path: Path, launchpad_file: Path, fworker_file: Path) -> Path:
    """The shipped queue adapter with this checkout's paths and the test's config files."""
    settings = yaml.safe_load(QADAPTER.read_text())
    launch = settings["rocket_launch"]
    launch = re.sub(r"-l \S+", f"-l {launchpad_file}", launch)
    settings["rocket_launch"] = re.sub(r"-w \S+", f"-w {fworker_file}", launch)
    settings["pre_rocket"] = with_checkout_paths(settings["pre_rocket"])
    rendered = yaml.safe_dump(settings)
    assert PLACEHOLDER not in rendered, f"{QADAPTER} has paths the test cannot fill in"
    path.write_text(rendered)
    return path


def outside_the_venv(env: dict[str, str]) -> dict[str, str]:
    """``env`` without this virtual environment or a FireWorks config: jobs must find both
    through the queue adapter, as on a cluster where nothing is activated at submission."""
    env = dict(env)
    for name in ("VIRTUAL_ENV", "FW_CONFIG_FILE"):
        env.pop(name, None)
    paths = env.get("PATH", "").split(":")
    env["PATH"] = ":".join(path for path in paths if Path(path).resolve() != BIN.resolve())
    return env


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, details: Callable[[], str]
) -> None:
    """Poll ``condition`` every 0.2 s; fail with ``details()`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout_s:.0f} s for {what}\n{details()}"
        time.sleep(0.2)


def lost_fireworks(lpad_output: str) -> int:
    """The number of lost Fireworks ``lpad detect_lostruns`` reports."""
    (count,) = re.findall(r"Lost FireWorks: (\d+)", lpad_output)
    return int(count)


def seconds_since(timestamp: str) -> float:
    """Seconds from a FireWorks state-history time (ISO 8601, UTC) to now."""
    return (datetime.now(UTC) - datetime.fromisoformat(timestamp)).total_seconds()


def firework_state(launchpad: LaunchPad, fw_id: int) -> str:
    return launchpad.fireworks.find_one({"fw_id": fw_id})["state"]


def launch_states(launchpad: LaunchPad, fw_id: int) -> list[str]:
    """States of every launch of a Firework, current and archived, in launch order."""
    launches = launchpad.launches.find({"fw_id": fw_id}).sort("launch_id")
    return [launch["state"] for launch in launches]


def test_job_preamble_finds_rlaunch_and_a_lost_run_window_of_several_heartbeats(tmp_path):
    """The shipped pre_rocket in a login shell with nothing activated, as a SLURM job runs it."""
    pre_rocket = with_checkout_paths(yaml.safe_load(QADAPTER.read_text())["pre_rocket"])
    probe = (
        "command -v rlaunch\n"
        'echo "$FW_CONFIG_FILE"\n'
        "python -c 'from fireworks import fw_config as c; "
        "print(c.PING_TIME_SECS, c.RUN_EXPIRATION_SECS)'\n"
    )
    env = outside_the_venv(dict(os.environ)) | {"PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        ["bash", "-l", "-c", pre_rocket + probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rlaunch, fw_config, ping_s, window_s = done.stdout.split()
    assert Path(rlaunch) == BIN / "rlaunch"
    assert Path(fw_config) == FW_CONFIG
    ping_s, window_s = int(ping_s), int(window_s)
    assert ping_s <= 120  # FireWorks' default heartbeat, 3600 s, would hide a lost run for hours
    assert window_s >= 4 * ping_s  # a live run would have to miss four heartbeats in a row


@pytest.mark.slow
@pytest.mark.slurm
def test_qlaunch_rapidfire_through_sbatch_computes_each_record_once(
    queue, launchpad, db_config, tmp_path
):
    cif_dir = tmp_path / "cifs"
    cif_dir.mkdir()
    nio_structure().to(filename=str(cif_dir / "NiO.cif"))
    shutil.copy(REPO / "vtc_fw" / "data" / "sample" / "907-2578-MnO.cif", cif_dir / "MnO.cif")
    report = submit_entries(
        open_source("cif-dir", path=str(cif_dir)), db_config, XesWorkflowMaker(preset="smoke")
    )
    assert sorted(report.added) == ["file:MnO:Mn:smoke", "file:NiO:Ni:smoke"]

    queue.qlaunch("--nlaunches", "2")  # two jobs, one core each, side by side on the node
    queue.wait_for_jobs()

    job_outputs = sorted(queue.launch_dir.glob("block_*/launcher_*/vtc_fw-*.out"))
    assert len(job_outputs) == 2, queue.logs()
    fireworks = list(launchpad.fireworks.find({}))
    assert {fw["state"] for fw in fireworks} == {"COMPLETED"}, queue.logs()
    for fw in fireworks:
        assert launch_states(launchpad, fw["fw_id"]) == ["COMPLETED"]
        (launch,) = launchpad.launches.find({"fw_id": fw["fw_id"]})
        assert Path(launch["launch_dir"]).is_relative_to(queue.launch_dir)
    tasks = db_config.collection("tasks")
    assert tasks.count_documents({}) == 2
    assert sorted(tasks.distinct("task_key")) == ["file:MnO:Mn:smoke", "file:NiO:Ni:smoke"]
    for task in tasks.find({}):
        assert task["state"] == "successful", task.get("error")
        assert task["sams"] < 1e-3  # cubic rock salt: no anisotropy


@pytest.mark.slow
@pytest.mark.slurm
def test_scancel_leaves_a_lost_run_that_detect_lostruns_reruns_once_and_never_a_live_one(
    queue, slurm, launchpad, db_config
):
    workflow = XesWorkflowMaker(preset=LIVE_PRESET).make(nio_structure(), "slurm:NiO", "Ni")
    (fw_id,) = launchpad.add_wf(workflow).values()
    tasks = db_config.collection("tasks")

    queue.qlaunch("--nlaunches", "1")
    wait_until(
        lambda: firework_state(launchpad, fw_id) == "RUNNING", 120, "a RUNNING job", queue.logs
    )
    (job_id,) = slurm.job_ids()
    launch = launchpad.launches.find_one({"fw_id": fw_id, "state": "RUNNING"})
    launch_dir = Path(launch["launch_dir"])
    wait_until(lambda: any(launch_dir.glob("feff_*")), 60, "FEFF to start", queue.logs)

    # Alive: RUNNING for longer than the window, yet not lost, because the heartbeat goes on.
    running_since = launch["state_history"][-1]["created_on"]
    wait_until(
        lambda: seconds_since(running_since) > LOST_AFTER_S + 1, 30, "the window", queue.logs
    )
    assert lost_fireworks(queue.lpad("detect_lostruns", "--time", str(LOST_AFTER_S))) == 0
    launch = launchpad.launches.find_one({"launch_id": launch["launch_id"]})
    assert launch["state"] == "RUNNING" and not (launch_dir / RESULT_FILE).exists(), (
        "FEFF ended before the check: the record is too small to test a live run"
    )
    # Updated after the task's start (a checkpoint at RUNNING + ~0 s): by the heartbeat thread.
    assert seconds_since(launch["state_history"][-1]["updated_on"]) < LOST_AFTER_S

    slurm.run("scancel", job_id)
    queue.wait_for_jobs(timeout_s=30)
    assert firework_state(launchpad, fw_id) == "RUNNING"  # nobody told FireWorks
    assert tasks.count_documents({}) == 0

    last_heartbeat = launchpad.launches.find_one({"launch_id": launch["launch_id"]})[
        "state_history"
    ][-1]["updated_on"]
    wait_until(
        lambda: seconds_since(last_heartbeat) > LOST_AFTER_S + 1, 30, "the window", queue.logs
    )
    report = queue.lpad("detect_lostruns", "--time", str(LOST_AFTER_S), "--rerun")
    assert lost_fireworks(report) == 1, report
    assert firework_state(launchpad, fw_id) == "READY"

    queue.qlaunch("--nlaunches", "1")
    queue.wait_for_jobs()
    assert firework_state(launchpad, fw_id) == "COMPLETED", queue.logs()
    assert launch_states(launchpad, fw_id) == ["FIZZLED", "COMPLETED"]
    assert tasks.count_documents({}) == 1
    assert tasks.find_one({})["state"] == "successful"
