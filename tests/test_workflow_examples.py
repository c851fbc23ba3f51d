"""The workflow specifications in workflows/ and the top-level FireWorks configuration files.

The examples must be what the maker writes today, load with FireWorks, and run (the smoke one,
real FEFF10 through ``rlaunch singleshot``); ``my_fworker.yaml`` must define every ``>>key<<``
they use, so ``rlaunch rapidfire`` in the checkout needs no ``-l/-w`` and no edits.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fireworks import FWorker, Workflow

from vtc_fw.workflow.examples import EXAMPLE_PRESETS, example_workflows

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
ENV_KEY = re.compile(r">>(\w+)<<")


def _without_times(workflow: Workflow) -> dict:
    """The workflow's dict without creation times and the session's temporary Firework ids."""
    document = workflow.to_dict()
    assert len(document.pop("links")) == 1
    text = yaml.safe_dump(document)
    return yaml.safe_load(re.sub(r"(created_on|updated_on|fw_id): .*", "", text))


@pytest.mark.parametrize("stem", sorted(EXAMPLE_PRESETS))
def test_examples_are_what_the_maker_writes(stem):
    committed = Workflow.from_file(str(WORKFLOWS / f"{stem}.yaml"))
    assert _without_times(committed) == _without_times(example_workflows()[stem])


def test_fireworks_configuration_sits_together_at_the_top():
    for name in ("my_launchpad.yaml", "my_fworker.yaml", "my_qadapter.yaml", "db.json"):
        assert (ROOT / name).is_file(), name
    assert sorted(p.name for p in WORKFLOWS.iterdir()) == sorted(
        f"{stem}.yaml" for stem in EXAMPLE_PRESETS
    )


def test_my_fworker_defines_every_key_the_workflows_use():
    env = FWorker.from_file(str(ROOT / "my_fworker.yaml")).env
    used = {key for path in WORKFLOWS.glob("*.yaml") for key in ENV_KEY.findall(path.read_text())}
    assert used and used <= set(env), used - set(env)


@pytest.mark.slow
def test_the_smoke_example_runs_with_lpad_add_and_rlaunch(db_config, tmp_path):
    launchpad = db_config.launchpad()
    launchpad.reset("", require_password=False)
    launchpad_file = db_config.write_launchpad_yaml(tmp_path / "my_launchpad.yaml")
    env = {"db_file": str(db_config.write_db_json(tmp_path / "db.json")), "feff_cmd": None}
    FWorker(name="examples", env=env).to_file(str(tmp_path / "my_fworker.yaml"))
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [bin_dir / "lpad", "-l", launchpad_file, "add", WORKFLOWS / "nio_smoke.yaml"],
        check=True,
        capture_output=True,
    )
    subprocess.run([bin_dir / "rlaunch", "singleshot"], cwd=tmp_path, check=True, timeout=300)
    (firework,) = launchpad.fireworks.find({})
    assert firework["state"] == "COMPLETED"
    task = db_config.collection("tasks").find_one({})
    assert task["state"] == "successful" and task["preset"] == "smoke"
    assert task["sigma_frame"] == "cartesian" and len(task["sigma"]) == 6
