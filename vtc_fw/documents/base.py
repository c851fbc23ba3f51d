"""What every document shares: its state, its error, and one provenance block.

* :class:`State`: ``successful`` or ``failed``, the outcome of every document's computation;
* :class:`ErrorInfo`: why a document failed (type, machine :class:`~vtc_fw.errors.Reason`,
  message), built from an exception by one converter;
* :class:`BuilderMeta`: who built a document, when, with which code and settings;
* :func:`package_versions`: the versions of the packages results depend on.
"""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vtc_fw import __version__
from vtc_fw.errors import Reason, error_dict

TRACKED_PACKAGES: tuple[str, ...] = (
    "vtc-fw",
    "feff10-rs",
    "pymatgen",
    "numpy",
    "scipy",
    "spglib",
    "scikit-learn",
    "maggma",
    "fireworks",
    "pymongo",
)


class Document(BaseModel):
    """Base of every stored document and sub-document: enums are stored as their plain values."""

    model_config = ConfigDict(use_enum_values=True, validate_default=True)


class State(StrEnum):
    """Outcome of the computation a document holds."""

    SUCCESSFUL = "successful"
    FAILED = "failed"


class ErrorInfo(Document):
    """Why a document failed."""

    type: str = Field(description="Class name of the error, e.g. FeffRunError.")
    reason: Reason = Field(description="Machine-readable cause (a closed vocabulary).")
    message: str = Field(description="Human-readable explanation.")

    @classmethod
    def from_exception(cls, error: BaseException) -> ErrorInfo:
        """The error of an exception (``unexpected`` unless it is a vtc-fw error)."""
        described = error_dict(error)
        return cls(type=described["type"], reason=described["reason"], message=described["message"])


@lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    found = [("python", platform.python_version())]
    for package in TRACKED_PACKAGES:
        try:
            found.append((package, version(package)))
        except PackageNotFoundError:
            found.append((package, "not installed"))
    return tuple(found)


def package_versions() -> dict[str, str]:
    """Python's and the tracked packages' versions (read once per process; a fresh dict)."""
    return dict(_versions())


def utc_now() -> datetime:
    """The current time in UTC (builders' ``last_updated`` and build dates)."""
    return datetime.now(UTC)


class BuilderMeta(Document):
    """Provenance of a built document: who built it, when, with which code and settings."""

    builder: str = Field(description="Name of the builder class that wrote the document.")
    vtc_fw_version: str = Field(default=__version__, description="vtc-fw version.")
    versions: dict[str, str] = Field(
        default_factory=package_versions,
        description="Versions of Python and of the packages the result depends on.",
    )
    build_date: datetime = Field(default_factory=utc_now, description="When it was built (UTC).")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Builder settings that shaped the document."
    )
