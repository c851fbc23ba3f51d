"""Local FireWorks workers for ``vtc-fw run``: ``rlaunch rapidfire`` subprocesses.

The workers are the same ``rlaunch`` a cluster job runs, started in their own process
groups with a launchpad and fworker file written from the active :class:`DbConfig`. Ctrl-C,
SIGTERM or SIGHUP stop the workers (:func:`stop_signals_interrupt`); an interrupted run, or one
killed outright, leaves Fireworks RUNNING under the local worker's name, and
:func:`requeue_lost_local_runs` puts them back to READY before the next run, so finished FEFF
work is kept and unfinished work is redone once.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from fireworks import FWorker, LaunchPad

from vtc_fw.db.config import DbConfig
from vtc_fw.firetasks import trusted_fireworks_query

LOCAL_WORKER_NAME = "vtc-fw-local"
"""FWorker name of the workers that ``vtc-fw run`` starts on this machine."""


def worker_files(config: DbConfig, directory: Path, scratch_dir: Path) -> tuple[Path, Path]:
    """Write ``my_launchpad.yaml``, ``db.json`` and ``my_fworker.yaml`` for local workers.

    Paths are made absolute: each worker runs in a directory of its own.
    """
    directory, scratch_dir = directory.resolve(), scratch_dir.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    db_file = config.write_db_json(directory / "db.json")
    launchpad_file = config.write_launchpad_yaml(directory / "my_launchpad.yaml")
    fworker_file = directory / "my_fworker.yaml"
    env = {"db_file": str(db_file), "scratch_dir": str(scratch_dir), "feff_cmd": None}
    worker = FWorker(name=LOCAL_WORKER_NAME, env=env, query=trusted_fireworks_query())
    worker.to_file(str(fworker_file))
    return launchpad_file, fworker_file


def start_workers(
    count: int, launchpad_file: Path, fworker_file: Path, directory: Path
) -> list[subprocess.Popen]:
    """Start ``count`` ``rlaunch rapidfire`` workers; each stops when no READY work is left.

    The workers run rlaunch through :mod:`vtc_fw.workflow.worker`, which stops with one line
    (no traceback) when the database goes away.
    """
    rlaunch = [sys.executable, "-m", "vtc_fw.workflow.worker"]
    launchpad_file, fworker_file = launchpad_file.resolve(), fworker_file.resolve()
    workers = []
    for number in range(count):
        run_dir = directory / f"worker{number}"
        run_dir.mkdir(parents=True, exist_ok=True)
        with (run_dir / "rlaunch.log").open("a") as log:
            command = [*rlaunch, "-l", str(launchpad_file), "-w", str(fworker_file)]
            workers.append(
                subprocess.Popen(
                    [*command, "rapidfire", "--nlaunches", "0"],
                    cwd=run_dir,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    return workers


def stop_workers(workers: list[subprocess.Popen], grace_s: float = 10.0) -> None:
    """Stop workers and their FEFF children (SIGTERM, then SIGKILL after ``grace_s``)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for worker in workers:
            if worker.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.pid, sig)
        deadline = time.monotonic() + grace_s
        while any(w.poll() is None for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that stop ``vtc-fw run`` the way Ctrl-C does: ``kill``, a batch system, a closed
terminal. Without this the run would die and leave its workers computing unattended."""


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Raise KeyboardInterrupt on :data:`STOP_SIGNALS` too (main thread only, else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def wait_for_workers(
    workers: list[subprocess.Popen],
    poll: Callable[[], None] | None = None,
    interval_s: float = 2.0,
) -> list[int]:
    """Wait until every worker exits, calling ``poll`` (a progress update) meanwhile."""
    while any(worker.poll() is None for worker in workers):
        if poll is not None:
            poll()
        time.sleep(interval_s)
    if poll is not None:
        poll()
    return [worker.returncode for worker in workers]


def requeue_lost_local_runs(launchpad: LaunchPad) -> list[int]:
    """Rerun Fireworks left RUNNING by local workers of this host that no longer exist.

    Only ``vtc-fw run`` starts workers named :data:`LOCAL_WORKER_NAME`, and it holds a lock
    while they run, so such a Firework that is RUNNING when no run is active was interrupted.

    Returns:
        The fw_ids put back to READY.
    """
    host = socket.gethostname()
    running = launchpad.fireworks.find({"state": "RUNNING"}, {"fw_id": 1, "launches": 1})
    lost = []
    for firework in running:
        launches = launchpad.launches.find(
            {"launch_id": {"$in": firework["launches"]}, "state": "RUNNING"},
            {"fworker.name": 1, "host": 1},
        )
        if any(
            launch["fworker"]["name"] == LOCAL_WORKER_NAME and launch.get("host") == host
            for launch in launches
        ):
            launchpad.rerun_fw(firework["fw_id"])
            lost.append(firework["fw_id"])
    return lost
