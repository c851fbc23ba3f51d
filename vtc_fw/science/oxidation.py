"""Oxidation states: pymatgen's bond-valence analyser first, then composition guesses."""

from dataclasses import dataclass
from typing import Any

import numpy as np
from pymatgen.analysis.bond_valence import BVAnalyzer
from pymatgen.core import Structure


@dataclass(frozen=True)
class OxidationResult:
    """Oxidation states of every site and how they were found.

    Attributes:
        charges: Per-site oxidation states (may be fractional for mixed valence), or None.
        method: ``"bvanalyzer"``, ``"oxi_state_guesses"``, or None when neither worked.
        message: Why no states could be assigned, when ``charges`` is None.
    """

    charges: np.ndarray | None
    method: str | None
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, stored with the structure document."""
        charges = None if self.charges is None else np.round(self.charges, 4).tolist()
        return {"charges": charges, "method": self.method, "message": self.message}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> "OxidationResult":
        """Inverse of :meth:`as_dict`."""
        charges = document.get("charges")
        return cls(
            None if charges is None else np.asarray(charges, dtype=float),
            document.get("method"),
            document.get("message"),
        )


def assign_oxidation_states(structure: Structure) -> OxidationResult:
    """Assign oxidation states to an ordered structure.

    BVAnalyzer is tried first (it uses the geometry); if it fails, the first of
    ``Composition.oxi_state_guesses()`` is applied to every site of an element.

    Args:
        structure: An ordered structure.

    Returns:
        The per-site states and the method used, or ``charges=None`` with the reason.
    """
    try:
        valences = BVAnalyzer().get_valences(structure)
        return OxidationResult(np.asarray(valences, dtype=float), "bvanalyzer")
    except ValueError:
        pass
    guesses = structure.composition.oxi_state_guesses(max_sites=-1)
    if not guesses:
        return OxidationResult(
            None, None, "neither BVAnalyzer nor oxi_state_guesses found charge-balanced states"
        )
    by_element = guesses[0]
    charges = np.array([by_element[site.specie.symbol] for site in structure], dtype=float)
    return OxidationResult(charges, "oxi_state_guesses")
