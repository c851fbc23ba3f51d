"""Every exception of vtc-fw, and the closed vocabulary of failure reasons.

Every error caused by bad input carries a machine-readable :class:`Reason` (stored in the
database next to the human-readable message), so that failed records can be counted and
queried by cause instead of being parsed out of tracebacks.
"""

from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    """Why something failed: the ``reason`` of every error and failed document."""

    # the generic ones, one per exception class
    ERROR = "error"
    UNEXPECTED = "unexpected"
    BAD_ARGUMENTS = "bad_arguments"
    BAD_STRUCTURE = "bad_structure"
    SOURCE_UNAVAILABLE = "source_unavailable"
    FEFF_FAILED = "feff_failed"
    FEFF_LADDER_EXHAUSTED = "feff_ladder_exhausted"
    DISK_FULL = "disk_full"
    BAD_TRANSFER_FILE = "bad_transfer_file"
    BAD_DB_CONFIG = "bad_db_config"
    DB_SERVER = "db_server"
    LOCKED = "locked"
    DB_UNAVAILABLE = "db_unavailable"
    # structures and records
    UNREADABLE = "unreadable"
    EMPTY = "empty"
    DISORDERED = "disordered"
    NOT_PERIODIC = "not_periodic"
    OVERLAPPING_ATOMS = "overlapping_atoms"
    ISOLATED_SITE = "isolated_site"
    NO_3D_METAL = "no_3d_metal"
    SYMMETRY_FAILED = "symmetry_failed"
    NON_FINITE = "non_finite"
    DEGENERATE_LATTICE = "degenerate_lattice"
    TOO_LARGE = "too_large"
    # structure sources
    NO_API_KEY = "no_api_key"
    INVALID_API_KEY = "invalid_api_key"
    NETWORK = "network"
    MISSING_PACKAGE = "missing_package"
    MISSING_DIRECTORY = "missing_directory"
    MISSING_DATABASE = "missing_database"
    # FEFF
    TIMEOUT = "timeout"
    NONZERO_EXIT = "nonzero_exit"
    MISSING_XMU = "missing_xmu"
    EMPTY_SPECTRUM = "empty_spectrum"
    ZERO_SPECTRUM = "zero_spectrum"
    NAN_SPECTRUM = "nan_spectrum"
    GRID_MISMATCH = "grid_mismatch"
    SCF_NOT_CONVERGED = "scf_not_converged"
    SCF_BAD_COUNTS = "scf_bad_counts"
    FEFF_NOT_FOUND = "feff_not_found"
    UNTRUSTED_SPEC = "untrusted_spec"
    # builders
    NO_SUCCESSFUL_TASK = "no_successful_task"
    UNUSABLE_SPECTRA = "unusable_spectra"
    NULL_FEATURES = "null_features"
    BAD_MODEL_BLOB = "bad_model_blob"
    # the embedded database server
    PORT_IN_USE = "port_in_use"
    SERVER_MISSING = "server_missing"
    SERVER_EXITED = "server_exited"
    SERVER_TIMEOUT = "server_timeout"
    SERVER_RUNNING = "server_running"


class VtcError(Exception):
    """Base class of all vtc-fw errors.

    Args:
        message: Human-readable explanation, written for the user who supplied the input.
        reason: Machine-readable cause (a :class:`Reason` or its value); the class's own
            reason when omitted.
    """

    reason: Reason = Reason.ERROR

    def __init__(self, message: str, reason: Reason | str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = Reason(reason)

    def as_dict(self) -> dict[str, Any]:
        """The error as stored in a document: its class, reason and message."""
        return {"type": type(self).__name__, "reason": self.reason.value, "message": str(self)}


class StructureError(VtcError):
    """A structure cannot be used at all (unreadable, disordered, no 3d metal, isolated atoms)."""

    reason = Reason.BAD_STRUCTURE


class SourceUnavailableError(VtcError):
    """A structure source cannot be reached (no API key, no network, missing database)."""

    reason = Reason.SOURCE_UNAVAILABLE


class FeffError(VtcError):
    """FEFF failed: a crash, a timeout, a missing or unphysical spectrum."""

    reason = Reason.FEFF_FAILED


class FeffRunError(FeffError):
    """Every rung of the retry ladder failed for a site; ``attempts`` holds all of them.

    Args:
        message: What failed.
        attempts: The ladder's attempts (``vtc_fw.feff.ladder.Attempt``), each with ``as_dict``.
        reason: The cause, when one cause explains it (e.g. ``timeout``).
    """

    reason = Reason.FEFF_LADDER_EXHAUSTED

    def __init__(
        self, message: str, attempts: list[Any], reason: Reason | str | None = None
    ) -> None:
        super().__init__(message, reason)
        self.attempts = attempts

    def as_dict(self) -> dict[str, Any]:
        """The error with its attempts, as stored in a document."""
        return {**super().as_dict(), "attempts": [a.as_dict() for a in self.attempts]}


class DiskFullError(VtcError):
    """The disk (or quota) where a record's FEFF runs or its result is written is full.

    Attributes:
        attempts: The FEFF attempts of the record when the disk filled up during its ladder
            (those of the :class:`FeffRunError` it replaces), else None.
    """

    reason = Reason.DISK_FULL
    attempts: list[Any] | None = None


class ModelBlobError(VtcError):
    """A stored model cannot be used: not the safe format, a disallowed class, a hash mismatch."""

    reason = Reason.BAD_MODEL_BLOB


class TransferError(VtcError):
    """A line of an import file is not a task document."""

    reason = Reason.BAD_TRANSFER_FILE


class DbConfigError(VtcError):
    """A database configuration file is missing or malformed."""

    reason = Reason.BAD_DB_CONFIG


class DatabaseServerError(VtcError):
    """The embedded database server cannot be started or stopped."""

    reason = Reason.DB_SERVER


class LockHeldError(VtcError):
    """A database lock (e.g. the build lock) is held by another live process."""

    reason = Reason.LOCKED


class DatabaseUnavailableError(VtcError):
    """The database did not answer for as long as the operation was allowed to retry."""

    reason = Reason.DB_UNAVAILABLE


class UsageError(VtcError):
    """A command was called with arguments that cannot work together."""

    reason = Reason.BAD_ARGUMENTS


def error_dict(error: BaseException) -> dict[str, Any]:
    """Any exception as stored in a failed document: ``{"type", "reason", "message"}``.

    A vtc-fw error keeps its reason (and a ladder failure its attempts); anything else is
    ``unexpected`` with its message.
    """
    if isinstance(error, VtcError):
        return error.as_dict()
    return {"type": type(error).__name__, "reason": Reason.UNEXPECTED.value, "message": str(error)}
