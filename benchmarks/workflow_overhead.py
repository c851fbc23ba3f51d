"""What FireWorks, the database and the FireTasks add to each FEFF task, and 1 vs 2 workers.

Starts a private secantusd-py (temp dir, free port), adds N one-record workflows (rock-salt
monoxides, real FEFF10 with the chosen preset), runs ``rlaunch rapidfire`` with one worker,
then again with two, and prints:

- per task: rlaunch wall time, the FEFF engine's wall and CPU time (from the task documents);
- the workflow overhead = wall per task (1 worker) − RunXesTask wall (``task_wall_s``), as a
  fraction of FEFF CPU, and separately what RunXesTask adds around the engine (record rebuild,
  archiving the FEFF directory);
- throughput (tasks/min) with 1 and 2 concurrent workers.

The workflow overhead includes rlaunch start-up and imports (amortised over N), Firework
checkout and state updates, writing/reading the result file and inserting the document.
Goal: ≤ 3 % of FEFF CPU time with the "paper" preset.

Usage: python benchmarks/workflow_overhead.py [--preset smoke|fast|paper] [--tasks N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fireworks import FWorker
from pymatgen.core import Lattice, Structure

from vtc_fw.db.config import DbConfig
from vtc_fw.db.embedded import EmbeddedServer, free_port
from vtc_fw.workflow.maker import XesWorkflowMaker

LATTICE_A = {"Ti": 4.18, "V": 4.09, "Mn": 4.44, "Fe": 4.33, "Co": 4.26, "Ni": 4.17}


def rock_salt(metal: str) -> Structure:
    """Primitive rock-salt monoxide of ``metal``."""
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(LATTICE_A[metal]), [metal, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    ).get_primitive_structure()


def run_batch(config: DbConfig, preset: str, n_tasks: int, n_workers: int, root: Path) -> dict:
    """Add ``n_tasks`` workflows to a fresh database and run them with ``n_workers`` workers."""
    launchpad = config.launchpad()
    launchpad.reset("", require_password=False)
    maker = XesWorkflowMaker(preset=preset)
    metals = list(LATTICE_A)
    for n in range(n_tasks):
        metal = metals[n % len(metals)]
        launchpad.add_wf(maker.make(rock_salt(metal), f"bench{n}:{metal}O", metal))
    launchpad_file = config.write_launchpad_yaml(root / "my_launchpad.yaml")
    db_file = config.write_db_json(root / "db.json")
    fworker_file = root / "my_fworker.yaml"
    FWorker(name="bench", env={"db_file": str(db_file)}).to_file(str(fworker_file))
    rlaunch = Path(sys.executable).parent / "rlaunch"
    start = time.perf_counter()
    workers = []
    for n in range(n_workers):
        directory = root / f"{n_workers}w_{n}"
        directory.mkdir()
        log = (directory / "rlaunch.log").open("w")
        command = [str(rlaunch), "-l", str(launchpad_file), "-w", str(fworker_file), "rapidfire"]
        workers.append(
            subprocess.Popen(command, cwd=directory, stdout=log, stderr=subprocess.STDOUT)
        )
    for worker in workers:
        worker.wait()
    wall = time.perf_counter() - start
    tasks = list(config.collection("tasks").find({"state": "successful"}))
    if len(tasks) != n_tasks:
        raise RuntimeError(f"{len(tasks)} of {n_tasks} tasks succeeded; see {root}")
    return {
        "wall_s": wall,
        "feff_wall_s": [task["wall_s"] for task in tasks],
        "feff_cpu_s": [task["cpu_s"] for task in tasks],
        "firetask_wall_s": [task["task_wall_s"] for task in tasks],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--tasks", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vtc_fw_bench_") as scratch:
        root = Path(scratch)
        server = EmbeddedServer(home=root / "home", port=free_port(), cache_size="64M")
        server.start()
        try:
            base = DbConfig(host=server.host, port=server.port)
            one = run_batch(base.with_database("bench1"), args.preset, args.tasks, 1, root)
            two = run_batch(base.with_database("bench2"), args.preset, args.tasks, 2, root)
        finally:
            server.stop()
    report(args.preset, args.tasks, one, two)


def report(preset: str, n_tasks: int, one: dict, two: dict) -> None:
    """Print the figures (medians over the tasks of the 1-worker batch)."""
    per_task = one["wall_s"] / n_tasks
    feff_wall = statistics.median(one["feff_wall_s"])
    feff_cpu = statistics.median(one["feff_cpu_s"])
    firetask_wall = statistics.median(one["firetask_wall_s"])
    workflow = per_task - firetask_wall
    record_and_archive = firetask_wall - feff_wall
    print(f"preset {preset}, {n_tasks} one-site records per batch")
    print(f"1 worker: {per_task:.2f} s wall per task (batch {one['wall_s']:.1f} s)")
    print(f"FEFF engine per task (median): wall {feff_wall:.2f} s, CPU {feff_cpu:.2f} s")
    print(
        f"FireWorks + database + result file + insertion per task: {workflow:.2f} s = "
        f"{100 * workflow / feff_cpu:.1f} % of FEFF CPU"
    )
    share = 100 * record_and_archive / feff_cpu
    print(
        "record rebuild + work-directory archive (in RunXesTask, outside the engine's wall): "
        f"{record_and_archive:.2f} s = {share:.1f} % of FEFF CPU"
    )
    rate_one = 60 * n_tasks / one["wall_s"]
    rate_two = 60 * n_tasks / two["wall_s"]
    print(
        f"throughput: 1 worker {rate_one:.1f} tasks/min, 2 workers {rate_two:.1f} tasks/min "
        f"(x{rate_two / rate_one:.2f})"
    )


if __name__ == "__main__":
    main()
