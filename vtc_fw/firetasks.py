"""FireTasks of the VtC-XES workflow: run FEFF for one record, then insert its task document.

``RunXesTask`` rebuilds the record from the structure carried in the Firework (records are
deterministic), runs the FEFF engine in the launch directory (or a scratch directory) and
writes the outcome, success or failure, to :data:`RESULT_FILE`. ``InsertXesTask`` turns that
file into a :class:`~vtc_fw.documents.task.TaskDocument`, inserts it idempotently and makes
the Firework FIZZLE when the calculation failed, so failures are both data and visible.

A full disk is a failure like any other, with reason ``disk_full``: ``RunXesTask`` refuses to
start FEFF with less than :data:`MIN_FREE_BYTES` free where it would run, names a full disk
as the cause of a failure that left the disk full, and when even the result file cannot be
written it hands the (small) failure outcome to ``InsertXesTask`` in the spec instead.

A database that goes away costs no FEFF work (:mod:`vtc_fw.db.kept_results`): a successful
outcome is also kept by task key in ``VTC_FW_RESULT_DIR`` until its document is stored;
``InsertXesTask`` retries for ``VTC_FW_STORE_RETRY_S`` (:mod:`vtc_fw.db.retry`), then fails
with one line, and ``RunXesTask`` of the rerun Firework resumes from the kept result once it
has checked that the result belongs to the Firework's record, preset and route.

Machine-specific values follow atomate's convention: a parameter ``">>key<<"`` is read from
the FWorker's ``env`` (``feff_cmd``, ``db_file``, ``scratch_dir``).
"""

from __future__ import annotations

import errno
import shutil
import socket
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from fireworks import FiretaskBase, FWAction, explicit_serialize
from pymatgen.core import Structure

# Importing vtc_fw.db (any module of it) also makes FireWorks' id draws atomic on every server
# (vtc_fw.db.fireworks_ids): every worker that runs these tasks gets unique launch ids.
from vtc_fw.db.config import DbConfig
from vtc_fw.db.kept_results import (
    forget_result,
    keep_result,
    kept_result_path,
    read_result,
    resumable_result,
    write_result,
)
from vtc_fw.db.retry import retry_while_unreachable
from vtc_fw.documents.task import TaskDocument, ensure_task_indexes, insert_task
from vtc_fw.errors import (
    DatabaseUnavailableError,
    DiskFullError,
    FeffError,
    Reason,
    VtcError,
    error_dict,
)
from vtc_fw.keys import task_key
from vtc_fw.settings import get_settings

if TYPE_CHECKING:
    from vtc_fw.science.records import Record

RESULT_FILE = "xes_result.json.gz"
"""Outcome of ``RunXesTask`` in the launch directory, read by ``InsertXesTask``."""
RESULT_SPEC_KEY = "_vtc_result"
"""Spec key that carries the outcome to ``InsertXesTask`` when RESULT_FILE cannot be written."""
MIN_FREE_BYTES = 512 * 2**20
"""Free space a record needs where FEFF runs. The largest work directory of the reference
dataset held 149 MB of FEFF files, then its archive 42 MB beside them."""
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
SELECTION_TIMEOUT_MS = 5000
"""How long one try to store a task waits for the database to answer, ms."""


def env_value(value: Any, fw_spec: dict[str, Any], default: Any = None) -> Any:
    """Resolve ``">>key<<"`` from the FWorker env (``fw_spec["_fw_env"]``); else ``value``."""
    if isinstance(value, str) and value.startswith(">>") and value.endswith("<<"):
        return fw_spec.get("_fw_env", {}).get(value[2:-2], default)
    return default if value is None else value


def worker_feff_cmd(value: Any, fw_spec: dict[str, Any]) -> str | None:
    """The external FEFF command, taken only from the worker's own configuration.

    A Firework may name a command of the FWorker's ``env`` (``">>feff_cmd<<"``, or another
    ``>>key<<``) but never carry one: whoever can write to the database could otherwise make
    every worker run a program of their choice.

    Raises:
        VtcError: ``untrusted_spec``, when the spec holds a command instead of a reference.
    """
    if value is None:
        return None
    if isinstance(value, str) and value.startswith(">>") and value.endswith("<<"):
        return env_value(value, fw_spec)
    raise VtcError(
        f"refused the FEFF command written in the Firework ({value!r}): executables come only "
        "from the worker's my_fworker.yaml (env.feff_cmd, named by >>feff_cmd<<)",
        reason=Reason.UNTRUSTED_SPEC,
    )


@explicit_serialize
class RunXesTask(FiretaskBase):
    """Compute the polarized VtC-XES of one record with FEFF10 and write :data:`RESULT_FILE`.

    Required params:
        structure (dict | Structure): The structure (a pymatgen dict when stored).
        structure_id (str): Id of the structure.
        element (str): Absorbing 3d element X.
        preset (str): FEFF preset name.

    Optional params:
        feff_cmd (str): ``">>key<<"`` naming a command of the FWorker env (default: feff10-rs);
            a command written in the spec itself is refused (:func:`worker_feff_cmd`).
        scratch_dir (str): Where FEFF runs, or ``">>scratch_dir<<"`` (default: launch dir).
        timeout_s (float): Wall-clock limit of the whole record (every site and rung), s.
        route (str): Engine route (default ``"sigma"``: the crystal σ too).
    """

    required_params: ClassVar[list[str]] = ["structure", "structure_id", "element", "preset"]
    optional_params: ClassVar[list[str]] = ["feff_cmd", "scratch_dir", "timeout_s", "route"]

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        """Run FEFF (or resume from a kept result); never raise for a bad record or FEFF."""
        started = time.monotonic()
        record_key = f"{self['structure_id']}:{self['element']}"
        work_root = Path(env_value(self.get("scratch_dir"), fw_spec) or Path.cwd())
        stored: dict[str, Any] = {"record_key": record_key}
        try:
            outcome = self._outcome(work_root, fw_spec, started, stored)
        except Exception as error:  # any failure of this record is its data, not a crash
            outcome = _failure(record_key, self["preset"], disk_full_cause(error, work_root))
            outcome["task_wall_s"] = time.monotonic() - started
        stored["state"] = outcome["state"]
        try:
            write_result(Path.cwd() / RESULT_FILE, outcome)
        except OSError as error:  # the launch directory's disk: the outcome goes in the spec
            failure = _failure(record_key, self["preset"], disk_full_cause(error, Path.cwd()))
            failure["task_wall_s"] = outcome["task_wall_s"]
            stored["state"] = failure["state"]
            return FWAction(stored_data=stored, update_spec={RESULT_SPEC_KEY: failure})
        return FWAction(stored_data=stored)

    def _outcome(
        self, work_root: Path, fw_spec: dict[str, Any], started: float, stored: dict[str, Any]
    ) -> dict[str, Any]:
        """The kept result of an earlier launch if it is this record's, else a FEFF run.

        A new successful outcome is kept by task key before anything is stored; ``stored``
        (the Firework's stored data) says whether the run resumed or why a kept file was not
        used.
        """
        record = self._record()
        key = task_key(record.key, self["preset"])
        route = self.get("route", "sigma")
        kept, ignored = resumable_result(key, record.summary(), route)
        if ignored is not None:
            stored["kept_result_ignored"] = ignored
        if kept is not None:
            stored["resumed_from"] = str(kept_result_path(key))
            return kept
        outcome = self._compute(record, work_root, fw_spec, route)
        outcome["task_wall_s"] = time.monotonic() - started
        try:
            stored["kept_result"] = str(keep_result(key, outcome))
        except OSError as error:  # the launch directory's copy still stands
            stored["kept_result_error"] = str(error)
        return outcome

    def _record(self) -> Record:
        """The Firework's record, rebuilt from its structure (records are deterministic)."""
        from vtc_fw.science.records import make_records

        structure = self["structure"]  # FireWorks may already have deserialized the dict
        if not isinstance(structure, Structure):
            structure = Structure.from_dict(structure)
        (record,) = make_records(
            structure, structure_id=self["structure_id"], elements=[self["element"]]
        )
        return record

    def _compute(
        self, record: Record, work_root: Path, fw_spec: dict[str, Any], route: str
    ) -> dict[str, Any]:
        from vtc_fw.feff import compute_record_spectra

        check_free_space(work_root)
        workdir = work_root / f"feff_{record.key.replace(':', '_')}"
        spectra = compute_record_spectra(
            record,
            preset=self["preset"],
            workdir=workdir,
            feff_cmd=worker_feff_cmd(self.get("feff_cmd"), fw_spec),
            timeout_s=self.get("timeout_s"),
            route=route,
        )
        return {"state": "successful", "record": record.summary(), "spectra": spectra.as_dict()}


@explicit_serialize
class InsertXesTask(FiretaskBase):
    """Insert the task document of :data:`RESULT_FILE`; FIZZLE if the calculation failed.

    Optional params:
        db_file (str): db.json / my_launchpad.yaml, or ``">>db_file<<"`` (default: the
            configuration in force, see :meth:`vtc_fw.db.config.DbConfig.load`).
    """

    optional_params: ClassVar[list[str]] = ["db_file"]

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        """Insert the document, retrying while the database is away; FIZZLE a failed task.

        Raises:
            FeffError: The calculation failed (its document is stored).
            DatabaseUnavailableError: The database stayed away for ``VTC_FW_STORE_RETRY_S``;
                the result stays kept for a rerun of the Firework.
        """
        outcome = fw_spec.get(RESULT_SPEC_KEY) or read_result(Path.cwd() / RESULT_FILE)
        document = task_document(outcome, run_dir=str(Path.cwd()), host=socket.gethostname())
        config = DbConfig.load(env_value(self.get("db_file"), fw_spec))
        try:
            written = retry_while_unreachable(
                lambda: store_task(config, document), get_settings().store_retry_s
            )
        except DatabaseUnavailableError as error:
            raise DatabaseUnavailableError(
                f"{document.task_key} not stored: {error}; {_how_to_resume(document)}"
            ) from error
        if document.state == "failed":
            raise task_failure(document)
        forget_result(document.task_key)
        return FWAction(
            stored_data={"task_key": document.task_key, "sams": document.sams, "db": written}
        )


def store_task(config: DbConfig, document: TaskDocument) -> str:
    """Insert a task document in one try (idempotent: safe to repeat after a broken try)."""
    client = config.client(serverSelectionTimeoutMS=SELECTION_TIMEOUT_MS)
    try:
        tasks = config.collection("tasks", client)
        ensure_task_indexes(tasks)
        return insert_task(tasks, document)
    finally:
        client.close()


def _how_to_resume(document: TaskDocument) -> str:
    """What the one-line storing failure tells the operator."""
    if document.state != "successful":
        return "a rerun of the Firework computes it again"
    return (
        f"the result is kept in {kept_result_path(document.task_key)}; rerun the Firework "
        "(lpad detect_lostruns --rerun, or lpad rerun_fws -i FW_ID) to store it without "
        "running FEFF again"
    )


def task_failure(document: TaskDocument) -> FeffError:
    """The error that fails the Firework of a failed task document, with the document's reason."""
    error = document.error
    reason = None if error is None else error.reason
    message = None if error is None else error.message
    return FeffError(
        f"{document.task_key} failed ({reason}): {message}",
        reason=str(FeffError.reason if reason is None else reason),
    )


def task_document(outcome: dict[str, Any], **provenance: Any) -> TaskDocument:
    """The task document of a :data:`RESULT_FILE` outcome."""
    if outcome["state"] == "successful":
        return TaskDocument.from_spectra(
            outcome["record"],
            outcome["spectra"],
            task_wall_s=outcome.get("task_wall_s"),
            **provenance,
        )
    return TaskDocument.from_failure(
        outcome["record_key"],
        outcome["preset"],
        outcome["error"],
        attempts=outcome.get("attempts"),
        task_wall_s=outcome.get("task_wall_s"),
        **provenance,
    )


def free_bytes(directory: Path) -> int:
    """Free bytes on the disk of ``directory`` (of its nearest existing ancestor)."""
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    return shutil.disk_usage(directory).free


def check_free_space(directory: Path, needed: int = MIN_FREE_BYTES) -> None:
    """Refuse to start FEFF where a record's files would not fit.

    Raises:
        DiskFullError: Fewer than ``needed`` bytes are free on the disk of ``directory``.
    """
    free = free_bytes(directory)
    if free < needed:
        raise DiskFullError(
            f"{free / 2**20:.0f} MiB free on the disk of {directory}; a FEFF record needs "
            f"{needed / 2**20:.0f} MiB: free space or point scratch_dir at a larger disk"
        )


def disk_full_cause(error: Exception, directory: Path) -> Exception:
    """``error``, or a :class:`DiskFullError` saying so when a full disk caused it.

    A full disk is an ``OSError`` ENOSPC/EDQUOT, or any failure (FEFF's own write errors
    arrive as a FEFF crash) after which fewer than :data:`MIN_FREE_BYTES` are free.
    """
    if isinstance(error, DiskFullError):
        return error
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
        return _disk_full(f"disk full in {directory}: {error}", error)
    try:
        free = free_bytes(directory)
    except OSError:
        return error
    if free >= MIN_FREE_BYTES:
        return error
    message = f"{free / 2**20:.0f} MiB left on the disk of {directory} after: {error}"
    return _disk_full(message, error)


def _disk_full(message: str, cause: Exception) -> DiskFullError:
    """A DiskFullError that keeps the FEFF attempts of ``cause``."""
    full = DiskFullError(message)
    full.attempts = getattr(cause, "attempts", None)
    full.__cause__ = cause
    return full


def _failure(record_key: str, preset: str, error: Exception) -> dict[str, Any]:
    attempts = [_as_plain(attempt) for attempt in getattr(error, "attempts", None) or []]
    described = {k: v for k, v in error_dict(error).items() if k != "attempts"}
    if not isinstance(error, VtcError):
        described["message"] += "\n" + traceback.format_exc(limit=5)
    return {
        "state": "failed",
        "record_key": record_key,
        "preset": preset,
        "error": described,
        "attempts": attempts,
    }


def _as_plain(attempt: Any) -> dict[str, Any]:
    """An engine ``Attempt`` (or an already plain dict) as a dict."""
    return attempt.as_dict() if hasattr(attempt, "as_dict") else dict(attempt)


TRUSTED_TASKS = ("{{vtc_fw.firetasks.RunXesTask}}", "{{vtc_fw.firetasks.InsertXesTask}}")
"""The ``_fw_name`` of every FireTask a vtc-fw worker runs."""
UNTRUSTED_SPEC_KEYS = (
    "_background_tasks",
    "_launch_dir",
    "_trackers",
    "_files_in",
    "_files_out",
    "_files_prev",
    "_dupefinder",
    "_queueadapter",
)
"""Spec keys that make FireWorks itself act (run background FireTasks, change directory, read or
copy files, load a class, change the queue script); vtc-fw's Fireworks never carry them."""


def trusted_fireworks_query() -> dict[str, Any]:
    """The FWorker ``query`` of every vtc-fw worker: only Fireworks made of vtc-fw's FireTasks.

    A Firework's spec names the classes its worker instantiates and runs (``_tasks``, by
    ``_fw_name``): FireWorks' own ``ScriptTask`` runs a shell command, ``PyTask`` any
    function. With this query a worker never checks such a Firework out, whoever wrote it:
    ``_tasks`` must be a list of :data:`TRUSTED_TASKS` only, and none of
    :data:`UNTRUSTED_SPEC_KEYS` may be present. ``my_fworker.yaml`` and the local workers of
    ``vtc-fw run`` carry it.
    """
    allowed_tasks = {
        "$type": "array",
        "$not": {"$elemMatch": {"_fw_name": {"$nin": list(TRUSTED_TASKS)}}},
    }
    return {"spec._tasks": allowed_tasks} | {
        f"spec.{key}": {"$exists": False} for key in UNTRUSTED_SPEC_KEYS
    }
