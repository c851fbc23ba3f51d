"""scripts/reference_dataset.py: what a fresh machine's resume and the background workers rely on.

The Fireworks are plain ones whose spec names a task key, as vtc-fw's XES Fireworks do; the
worker sessions are ``sleep`` processes started in sessions of their own, as the rlaunch workers
are.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from fireworks import Firework, ScriptTask

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "reference_dataset.py"


def _script():
    spec = importlib.util.spec_from_file_location("reference_dataset_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_queued_records_whose_committed_task_failed_are_defused(db_config, launchpad):
    keys = ["oqmd-icsd:1-2-NiF2:Ni:screen_scf", "oqmd-icsd:3-4-CoF2:Co:screen_scf"]
    for fw_id, key in enumerate(keys, start=1):
        task = ScriptTask.from_str("true")
        launchpad.add_wf(Firework(task, spec={"task_key": key}, fw_id=fw_id))
    _script().defuse_failed(db_config, {keys[0], "oqmd-icsd:5-6-ZnO:Zn:screen_scf"})
    states = {fw["spec"]["task_key"]: fw["state"] for fw in launchpad.fireworks.find()}
    assert states == {keys[0]: "DEFUSED", keys[1]: "READY"}


def test_workers_sessions_take_the_scripts_niceness(tmp_path):
    """Run under ``nice -n 7``: the worker's own session (autogroup) gets niceness 7 too."""
    if not Path("/proc/self/autogroup").exists():
        pytest.skip("this kernel schedules without autogroup: nothing to set")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import importlib.util, subprocess, sys\n"
        f"spec = importlib.util.spec_from_file_location('script', {str(SCRIPT)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "worker = subprocess.Popen(['sleep', '30'], start_new_session=True)\n"
        "module.yield_to_other_sessions([worker.pid])\n"
        "print(open(f'/proc/{worker.pid}/autogroup').read().strip())\n"
        "worker.kill()\n"
    )
    result = subprocess.run(
        ["nice", "-n", "7", sys.executable, str(probe)], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().endswith("nice 7"), result.stdout + result.stderr
