"""The embedded default database: a ``secantusd-py`` server run as a separate process.

SecantusDB (PyPI ``secantusdb``) speaks the MongoDB wire protocol on top of WiredTiger.
It is GPL-2.0, so vtc-fw never imports it: the server is started as a subprocess from its
console script, on 127.0.0.1, with its own data directory under ``VTC_FW_HOME``, a pidfile
that records what was started, and a small WiredTiger cache (the server's default is 1 GB).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from vtc_fw.errors import DatabaseServerError
from vtc_fw.settings import get_settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 27017
SERVER_SCRIPT = "secantusd-py"


def vtc_fw_home() -> Path:
    """The directory of vtc-fw's local state: ``$VTC_FW_HOME``, default ``~/.vtc_fw``."""
    return get_settings().home_dir


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now (for a private server)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def server_answers(host: str, port: int, timeout_ms: int = 500) -> bool:
    """Whether a MongoDB-protocol server answers a ping at ``host:port``."""
    client: MongoClient = MongoClient(
        host, port, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        client.admin.command("ping")
    except PyMongoError:
        return False
    finally:
        client.close()
    return True


def port_accepts(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether any process accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@dataclass
class ServerStatus:
    """What is known about the embedded server.

    Attributes:
        running: A process started by vtc-fw (recorded in the pidfile) is alive.
        answering: Something answers MongoDB pings at ``host:port``.
        pid: Process id from the pidfile, if any.
        host: Bind address.
        port: TCP port.
        data_dir: WiredTiger data directory.
        log_file: The server's stdout/stderr log.
    """

    running: bool
    answering: bool
    pid: int | None
    host: str
    port: int
    data_dir: str
    log_file: str

    def as_dict(self) -> dict:
        """JSON-able form."""
        return asdict(self)


@dataclass
class EmbeddedServer:
    """Start, stop and inspect a private ``secantusd-py`` process.

    Args:
        home: Directory for the server's data, pidfile and log (default ``VTC_FW_HOME``).
        host: Bind address; keep it local.
        port: TCP port.
        cache_size: WiredTiger cache, a unit-suffixed size such as ``"256M"``.
        startup_timeout_s: How long ``start`` waits for the first ping, s.
    """

    home: Path = field(default_factory=vtc_fw_home)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    cache_size: str = "256M"
    startup_timeout_s: float = 60.0

    @property
    def server_dir(self) -> Path:
        """Directory holding everything of this server (one per port)."""
        return Path(self.home) / f"secantus-{self.port}"

    @property
    def data_dir(self) -> Path:
        """WiredTiger home directory."""
        return self.server_dir / "data"

    @property
    def pidfile(self) -> Path:
        """JSON pidfile: pid, host, port, data_dir, start time."""
        return self.server_dir / "secantusd.pid"

    @property
    def log_file(self) -> Path:
        """The server's combined stdout and stderr."""
        return self.server_dir / "secantusd.log"

    def status(self) -> ServerStatus:
        """The pidfile's process (if alive) and whether the port answers."""
        pid = self._recorded_pid()
        return ServerStatus(
            running=pid is not None,
            answering=server_answers(self.host, self.port),
            pid=pid,
            host=self.host,
            port=self.port,
            data_dir=str(self.data_dir),
            log_file=str(self.log_file),
        )

    def ensure_running(self) -> ServerStatus:
        """Start the server unless something already answers at ``host:port``."""
        if server_answers(self.host, self.port):
            return self.status()
        return self.start()

    def start(self) -> ServerStatus:
        """Start the server and wait until it answers; never disturb a live one.

        A server of this directory that is alive but slow to answer is waited for (up to
        ``startup_timeout_s``), never replaced: its pidfile and data stay as they are.

        Returns:
            The status of the running server (also when it was already running).

        Raises:
            DatabaseServerError: The port belongs to another server or process, a live
                server holds this directory but does not answer, the script is missing, or
                the new process exits or stays silent past ``startup_timeout_s``.
        """
        with self._lock():
            pid = self._recorded_pid()
            if pid is not None:
                self._wait_for_live_server(pid)
                return self.status()
            self._refuse_occupied_port()
            with self._lifetime_lock() as lifetime_fd:
                process = self._spawn(lifetime_fd)
            self._write_pidfile(process.pid)
            self._wait_until_answering(process)
        return self.status()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the server recorded in the pidfile (SIGTERM, then SIGKILL after ``timeout_s``).

        Returns:
            True if a running server was stopped, False if none was running.
        """
        with self._lock():
            pid = self._recorded_pid()
            if pid is None:
                return False
            os.kill(pid, signal.SIGTERM)
            if not _wait_for_exit(pid, timeout_s):
                os.kill(pid, signal.SIGKILL)
                _wait_for_exit(pid, 5.0)
            self.pidfile.unlink(missing_ok=True)
        return True

    def _wait_for_live_server(self, pid: int) -> None:
        """Wait for the recorded, live server to answer; it is never replaced.

        Raises:
            DatabaseServerError: It does not answer within ``startup_timeout_s``.
        """
        deadline = time.monotonic() + self.startup_timeout_s
        while _is_server_process(pid):
            if server_answers(self.host, self.port, timeout_ms=250):
                return
            if time.monotonic() > deadline:
                raise DatabaseServerError(
                    f"the server of {self.server_dir} (pid {pid}) is alive but did not answer "
                    f"at {self.host}:{self.port} within {self.startup_timeout_s:.0f} s; left "
                    f"as it is (log {self.log_file}; `vtc-fw db stop` stops it)",
                    reason="server_timeout",
                )
            time.sleep(0.1)
        raise DatabaseServerError(
            f"the server of {self.server_dir} (pid {pid}) exited while starting; "
            f"log {self.log_file}:\n{_tail(self.log_file)}",
            reason="server_exited",
        )

    def _refuse_occupied_port(self) -> None:
        """Refuse to start where something answers pings or holds the port.

        Raises:
            DatabaseServerError: ``port_in_use``.
        """
        if server_answers(self.host, self.port):
            raise DatabaseServerError(
                f"another server already answers at {self.host}:{self.port}",
                reason="port_in_use",
            )
        if port_accepts(self.host, self.port):
            raise DatabaseServerError(
                f"a process that is not a MongoDB-protocol server (or not yet answering) holds "
                f"{self.host}:{self.port}; nothing was started",
                reason="port_in_use",
            )

    @contextmanager
    def _lifetime_lock(self) -> Iterator[int]:
        """An exclusive lock on the directory, handed to the server for its whole life.

        The server process inherits the locked file descriptor, so the lock is held exactly
        as long as a server of this directory lives, pidfile or not.

        Yields:
            The locked descriptor, to pass to the server process.

        Raises:
            DatabaseServerError: ``server_running``: a live server holds the directory.
        """
        with (self.server_dir / "secantusd.running").open("w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as error:
                raise DatabaseServerError(
                    f"a live server holds {self.server_dir} although its pidfile does not "
                    f"name it; nothing was started or removed (see {self.log_file})",
                    reason="server_running",
                ) from error
            yield handle.fileno()

    def _spawn(self, lifetime_fd: int) -> subprocess.Popen:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # An explicit (empty) config file disables secantusd's auto-discovery of
        # ./secantusd.toml and ~/.secantus/secantusd.toml, so nothing outside this
        # directory changes the server.
        config_file = self.server_dir / "secantusd.toml"
        config_file.touch()
        command = [
            _server_script(),
            "--config", str(config_file),
            "--host", self.host,
            "--port", str(self.port),
            "--storage-path", str(self.data_dir),
            "--cache-size", self.cache_size,
            "--log-level", "WARNING",
        ]  # fmt: skip
        with self.log_file.open("ab") as log:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the command that started it
                cwd=self.server_dir,
                pass_fds=(lifetime_fd,),
            )

    def _wait_until_answering(self, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pidfile.unlink(missing_ok=True)
                raise DatabaseServerError(
                    f"{SERVER_SCRIPT} exited with code {process.returncode}; "
                    f"log {self.log_file}:\n{_tail(self.log_file)}",
                    reason="server_exited",
                )
            if server_answers(self.host, self.port, timeout_ms=250):
                return
            time.sleep(0.1)
        process.kill()
        self.pidfile.unlink(missing_ok=True)
        raise DatabaseServerError(
            f"{SERVER_SCRIPT} did not answer within {self.startup_timeout_s:.0f} s; "
            f"log {self.log_file}:\n{_tail(self.log_file)}",
            reason="server_timeout",
        )

    def _write_pidfile(self, pid: int) -> None:
        record = {
            "pid": pid,
            "host": self.host,
            "port": self.port,
            "data_dir": str(self.data_dir),
            "started": datetime.now(UTC).isoformat(),
        }
        partial = self.pidfile.with_suffix(".tmp")
        partial.write_text(json.dumps(record))
        partial.replace(self.pidfile)

    def _recorded_pid(self) -> int | None:
        """The pidfile's pid if that process is alive and is a secantusd; else None."""
        try:
            pid = int(json.loads(self.pidfile.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None
        return pid if _is_server_process(pid) else None

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise start/stop between processes (two workers may start at once)."""
        self.server_dir.mkdir(parents=True, exist_ok=True)
        with (self.server_dir / "secantusd.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _server_script() -> str:
    """Path of ``secantusd-py``: beside this interpreter first, then on PATH."""
    beside = Path(sys.executable).parent / SERVER_SCRIPT
    if beside.exists():
        return str(beside)
    found = shutil.which(SERVER_SCRIPT)
    if found is None:
        raise DatabaseServerError(
            f"{SERVER_SCRIPT} not found: install the 'secantusdb' package, or configure a "
            "MongoDB server in db.json / my_launchpad.yaml",
            reason="server_missing",
        )
    return found


def _is_server_process(pid: int) -> bool:
    """Whether ``pid`` is alive and runs the secantusd script (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return SERVER_SCRIPT.encode() in cmdline and state != "Z"


def _wait_for_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _is_server_process(pid):
            return True
        time.sleep(0.1)
    return False


def _tail(path: Path, n_lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n_lines:])
    except OSError:
        return "(no log)"
