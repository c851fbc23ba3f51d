"""A private single-node SLURM cluster for tests: munged, slurmctld and slurmd as plain processes.

Debian's ``slurmctld``, ``slurmd``, ``slurm-client`` and ``munge`` packages run here without
systemd: every daemon runs in the foreground as a child of the test process, with its own
``slurm.conf`` (``SLURM_CONF``), munge socket and key, private ports and state directories under
one temporary folder, so it shares nothing with a system installation or another test run.

What a container without systemd needs, learned the hard way:

* ``ProctrackType=proctrack/linuxproc`` and ``TaskPlugin=task/none`` (no cgroups);
* ``SlurmctldHost`` and ``NodeName`` equal to ``hostname -s``;
* munged's socket folder with mode 0755 and a key file readable by its owner only;
* the daemons started with ``-c`` (clear state), so no job of an earlier run comes back;
* stopping: cancel every job, wait until the queue is empty, then the daemons by PID. A job's
  processes carry this cluster's ``SLURM_CONF`` in their environment, which is how
  :meth:`SlurmCluster.stop` finds any left behind (and only those).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
"""Debian packages the cluster needs."""
EXECUTABLES = (
    "munged",
    "mungekey",
    "slurmctld",
    "slurmd",
    "sbatch",
    "squeue",
    "scancel",
    "scontrol",
)
"""Programs the cluster runs (``sinfo`` comes with ``sbatch``)."""


class SlurmUnavailable(RuntimeError):
    """SLURM cannot run on this machine (the reason says why)."""


def executable(name: str) -> str | None:
    """Full path of a SLURM or munge program (daemons live in sbin, not always on PATH)."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))


def missing_executables() -> list[str]:
    """The cluster's programs that are not installed."""
    return [name for name in EXECUTABLES if executable(name) is None]


def require_slurm(timeout_s: float = 600.0) -> None:
    """Make sure a cluster can run here: root, and the Debian SLURM and munge packages, which
    are installed with apt-get when missing.

    Raises:
        SlurmUnavailable: Not root (slurmd runs jobs as their owner), or the packages are
            missing and cannot be installed (no apt-get, no package registry).
    """
    if os.geteuid() != 0:
        raise SlurmUnavailable("slurmd and munged of a private cluster need root")
    missing = missing_executables()
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise SlurmUnavailable(f"{', '.join(missing)} missing and no apt-get to install them")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES],
    ):
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as error:
            raise SlurmUnavailable(f"{' '.join(command)} took over {timeout_s:.0f} s") from error
        if done.returncode != 0:
            raise SlurmUnavailable(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    if missing_executables():
        raise SlurmUnavailable(f"still missing after apt-get: {', '.join(missing_executables())}")


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on this machine now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def memory_mb() -> int:
    """Memory of this machine, MB (what slurmd reports as RealMemory)."""
    return psutil.virtual_memory().total // 2**20


class SlurmCluster:
    """One node, one partition (``debug``), every daemon a child process of this object.

    Args:
        root: An empty directory for configuration, state, sockets and logs.
        cpus: CPUs the node offers to jobs (default: this machine's).
    """

    PARTITION = "debug"

    def __init__(self, root: Path, cpus: int | None = None) -> None:
        self.root = root.resolve()
        self.cpus = cpus or os.cpu_count() or 1
        self.node = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket.2"
        self.log_dir = self.root / "log"
        self._daemons: dict[str, subprocess.Popen] = {}

    @property
    def env(self) -> dict[str, str]:
        """Environment for SLURM client commands (and everything that calls them)."""
        return os.environ | {"SLURM_CONF": str(self.conf)}

    def start(self, timeout_s: float = 60.0) -> None:
        """Start munged, slurmctld and slurmd; return when the node takes jobs.

        Raises:
            SlurmUnavailable: A daemon exited or the node did not become idle in time (the
                logs' tails are in the message). Whatever started is stopped again.
        """
        try:
            self._write_files()
            # In the foreground (-D, -F): each daemon's PID is its Popen's.
            self._start_daemon("munged", ["-F", *self._munged_options()])
            self._wait(lambda: self.munge_socket.exists(), timeout_s, "munged socket")
            self._start_daemon("slurmctld", ["-D", "-c"])
            self._wait(self._controller_answers, timeout_s, "slurmctld")
            self._start_daemon("slurmd", ["-D", "-c"])
            self._wait(self._node_idle, timeout_s, "node idle")
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout_s: float = 30.0) -> None:
        """Cancel every job, wait for them to end, stop the daemons by PID, kill any leftover."""
        if self._daemons.get("slurmctld") and self._daemons["slurmctld"].poll() is None:
            with contextlib.suppress(SlurmUnavailable, subprocess.SubprocessError):
                self.cancel_jobs(timeout_s)
        for name in ("slurmd", "slurmctld", "munged"):
            daemon = self._daemons.pop(name, None)
            if daemon is not None:
                _terminate(daemon, timeout_s)
        for process in self.processes():
            with contextlib.suppress(psutil.Error):
                process.kill()

    def run(self, *command: str, check: bool = True, timeout_s: float = 30.0) -> str:
        """Run a SLURM client command on this cluster; its standard output."""
        done = subprocess.run(
            list(command),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if check and done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)
        return done.stdout

    def cancel_jobs(self, timeout_s: float = 30.0) -> None:
        """Cancel every job of this cluster and wait until the controller lists none.

        Raises:
            SlurmUnavailable: Jobs are still listed after ``timeout_s``.
        """
        job_ids = self.job_ids()
        if job_ids:
            self.run("scancel", *job_ids, check=False)
        self._wait(lambda: not self.job_ids(), timeout_s, "jobs to end")

    def job_processes(self) -> list[psutil.Process]:
        """Processes of this cluster's jobs (leftovers, not its daemons)."""
        daemons = {daemon.pid for daemon in self._daemons.values()}
        return [process for process in self.processes() if process.pid not in daemons]

    def job_ids(self) -> list[str]:
        """Ids of the jobs the controller still lists: pending, running or completing."""
        return self.run("squeue", "--noheader", "--format=%i").split()

    def processes(self) -> list[psutil.Process]:
        """Running processes of this cluster: its daemons and jobs, which carry its SLURM_CONF."""
        found = []
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):  # gone, or a zombie without an environment
                if process.environ().get("SLURM_CONF") == str(self.conf):
                    found.append(process)
        return found

    def log_tails(self, characters: int = 1500) -> str:
        """The end of every daemon log and output, for failure messages."""
        parts = []
        for log in sorted(self.log_dir.iterdir()):
            parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-characters:]}")
        return "\n".join(parts)

    def _munged_options(self) -> list[str]:
        munge = self.munge_socket.parent
        return [
            f"--socket={self.munge_socket}",
            f"--key-file={munge / 'munge.key'}",
            f"--pid-file={munge / 'munged.pid'}",
            f"--seed-file={munge / 'munged.seed'}",
            f"--log-file={self.log_dir / 'munged.log'}",
        ]

    def _write_files(self) -> None:
        munge = self.munge_socket.parent
        for directory in (munge, self.log_dir, self.root / "state", self.root / "spool"):
            directory.mkdir(parents=True, exist_ok=True)
        for directory in (self.root, munge):
            directory.chmod(0o755)  # munged: every folder above its socket open to all
        key = munge / "munge.key"
        subprocess.run([executable("mungekey"), "--create", f"--keyfile={key}"], check=True)
        key.chmod(0o600)
        self.conf.write_text(self.slurm_conf())

    def slurm_conf(self) -> str:
        """The cluster's slurm.conf."""
        controller_port, node_port = free_ports(2)
        return "\n".join(
            [
                "ClusterName=vtcfwtest",
                f"SlurmctldHost={self.node}",
                f"SlurmctldPort={controller_port}",
                f"SlurmdPort={node_port}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={self.munge_socket}",
                f"StateSaveLocation={self.root / 'state'}",
                f"SlurmdSpoolDir={self.root / 'spool'}",
                f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
                f"SlurmdPidFile={self.root / 'slurmd.pid'}",
                f"SlurmctldLogFile={self.log_dir / 'slurmctld.log'}",
                f"SlurmdLogFile={self.log_dir / 'slurmd.log'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "JobCompType=jobcomp/none",
                "MpiDefault=none",
                "SchedulerType=sched/builtin",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                "SlurmdParameters=config_overrides",
                "ReturnToService=2",
                "KillWait=3",
                "MinJobAge=10",
                f"NodeName={self.node} CPUs={self.cpus} RealMemory={memory_mb()} State=UNKNOWN",
                f"PartitionName={self.PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE"
                " State=UP",
                "",
            ]
        )

    def _start_daemon(self, name: str, options: list[str]) -> None:
        with (self.log_dir / f"{name}.out").open("w") as out:
            self._daemons[name] = subprocess.Popen(
                [executable(name), *options],
                env=self.env,
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _controller_answers(self) -> bool:
        done = subprocess.run(
            ["scontrol", "ping"], env=self.env, capture_output=True, text=True, check=False
        )
        return done.returncode == 0 and "UP" in done.stdout

    def _node_idle(self) -> bool:
        state = self.run("sinfo", "--noheader", "--format=%T", check=False).strip()
        return state == "idle"

    def _wait(self, ready: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, daemon in self._daemons.items():
                if daemon.poll() is not None:
                    raise SlurmUnavailable(
                        f"{name} exited with {daemon.returncode} while waiting for {what}\n"
                        + self.log_tails()
                    )
            if ready():
                return
            time.sleep(0.2)
        raise SlurmUnavailable(f"no {what} after {timeout_s:.0f} s\n{self.log_tails()}")


def _terminate(process: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``; reap it."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
