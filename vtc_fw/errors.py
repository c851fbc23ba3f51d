"""Exceptions of vtc-fw.

Every error caused by bad input carries a short machine-readable ``reason`` (stored in the
database next to the human-readable message), so that failed records can be counted and
queried by cause instead of being parsed out of tracebacks.
"""


class VtcError(Exception):
    """Base class of all vtc-fw errors.

    Args:
        message: Human-readable explanation, written for the user who supplied the input.
        reason: Short machine-readable cause, e.g. ``"disordered"`` or ``"no_3d_metal"``.
    """

    reason: str = "error"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    def as_dict(self) -> dict[str, str]:
        """The error as stored in a document: its class, reason and message."""
        return {"type": type(self).__name__, "reason": self.reason, "message": str(self)}


class StructureError(VtcError):
    """A structure cannot be used at all (unreadable, disordered, no 3d metal, isolated atoms)."""

    reason = "bad_structure"


class RecordError(VtcError):
    """A (structure, element) record cannot be built or featurized."""

    reason = "bad_record"


class SourceUnavailableError(VtcError):
    """A structure source cannot be reached (no API key, no network, missing database)."""

    reason = "source_unavailable"


class FeffError(VtcError):
    """FEFF failed: a crash, a timeout, a missing or unphysical spectrum."""

    reason = "feff_failed"


class DiskFullError(VtcError):
    """The disk (or quota) where a record's FEFF runs or its result is written is full."""

    reason = "disk_full"
