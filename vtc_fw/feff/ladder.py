"""The retry ladder: what to change when FEFF fails on a site, and the record of every attempt.

FEFF10's usual failures are in the SCF loop (no convergence, "bad counts"), so each rung softens
the SCF: lower mixing with more iterations, then lower still, then no SCF at all (overlapped
atomic potentials). A site is retried from its SCF on each rung; every attempt is kept.
"""

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from vtc_fw.errors import Reason


@dataclass(frozen=True)
class Rung:
    """One step of the ladder.

    Attributes:
        name: Short label stored with the attempt.
        scf_changes: Keys of the preset's ``scf`` block to override; None drops the SCF.
    """

    name: str
    scf_changes: dict[str, Any] | None

    def scf(self, preset_scf: dict[str, Any] | None) -> dict[str, Any] | None:
        """The SCF settings of this rung given the preset's (None: no SCF)."""
        if preset_scf is None or self.scf_changes is None:
            return None
        return {**preset_scf, **self.scf_changes}


LADDER: tuple[Rung, ...] = (
    Rung("preset", {}),
    Rung("lower_mixing", {"ca": 0.05, "nscf": 60}),
    Rung("lowest_mixing", {"ca": 0.02, "nscf": 100}),
    Rung("no_scf", None),
)
"""Rungs tried in order until a site gives a valid spectrum for every polarization."""


def rungs_to_try(preset_scf: dict[str, Any] | None) -> Iterator[tuple[Rung, dict[str, Any] | None]]:
    """The ladder for a preset: each rung with its SCF settings, rungs that repeat one skipped.

    A preset without SCF has one rung to try (every rung's settings are "no SCF").
    """
    tried: list[dict[str, Any] | None] = []
    for rung in LADDER:
        scf = rung.scf(preset_scf)
        if scf not in tried:
            tried.append(scf)
            yield rung, scf


def ends_the_ladder(reason: str | None) -> bool:
    """Whether a failure stops the climb: a timeout leaves no time for another rung."""
    return reason == Reason.TIMEOUT


@dataclass
class Attempt:
    """One try of one site on one rung.

    Attributes:
        site_index: Representative absorbing site.
        rung: Ladder rung name.
        scf: SCF settings used (None: no SCF).
        ok: Whether every polarization gave a valid spectrum.
        reason: Machine reason of the failure (``scf_not_converged``, ``nonzero_exit``,
            ``timeout``, ``missing_xmu``...), or None.
        message: Human-readable failure message, or None.
        wall_s: Seconds spent on the attempt.
    """

    site_index: int
    rung: str
    scf: dict[str, Any] | None
    ok: bool
    reason: str | None = None
    message: str | None = None
    wall_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, the reason as its plain value.

        monty's ``jsanitize`` would write a :class:`~vtc_fw.errors.Reason` as an
        ``@module``/``@class`` object, which no task document accepts.
        """
        return {**asdict(self), "reason": None if self.reason is None else str(self.reason)}
