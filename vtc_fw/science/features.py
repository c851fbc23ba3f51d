"""The paper's feature row of a record, computed from the structure alone.

QAMS, DAMS and IAMS are anisotropy sums of the quadrupole, dipole and inertia tensors with
weights r^-n (the feature exponent n is swept over 1..14), expressed in the record's basis and
averaged over all absorber sites of the cell (equivalently: multiplicity-weighted over the
inequivalent ones). The other features are the mass density, space group / 230, the
d-electron count Z − q − 18 and the mean and spread of Pauling electronegativity in the cluster.

Beyond the paper, :data:`CRYSTAL_SUMS` take each sum of the site-averaged tensor instead, the
way the target sums the sites' spectra before comparing polarizations.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any

import numpy as np
from pymatgen.core import Element, Structure
from pymatgen.core.units import Length, Mass

from vtc_fw.errors import Reason, StructureError
from vtc_fw.keys import CRYSTAL_SUMS, MOMENT_SUMS, sweep_column
from vtc_fw.science.clusters import Cluster
from vtc_fw.science.records import Record
from vtc_fw.science.tensors import normalized_diagonals_by_exponent, pair_sum

FEATURE_COLUMNS: tuple[str, ...] = (
    "QAMS",
    "DAMS",
    "IAMS",
    "density",
    "spacegroup_norm",
    "n_d",
    "en_mean",
    "en_std",
)
"""Model inputs, in the paper's order."""
DEFAULT_FEATURE_EXPONENT = 5
"""Feature exponent used until a sweep on labelled data chooses another."""
SWEEP_EXPONENTS: tuple[int, ...] = tuple(range(1, 15))
"""The paper's exponent search range."""
GRAMS_PER_DALTON = float(Mass(1.0, "amu").to("g"))
CUBIC_CM_PER_CUBIC_ANGSTROM = float(Length(1.0, "ang").to("cm") ** 3)
F_ELEMENTS: frozenset[str] = frozenset(
    {
        *("Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu"),
        *("Th", "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr"),
    }
)
"""f-block elements (4f and 5f series after La and Ac): outside the paper's training domain."""


@dataclass
class FeatureRow:
    """Features of one record at one feature exponent.

    Charge-dependent values (QAMS, DAMS, n_d) are None, never zero, when oxidation states
    could not be assigned or all vanish.
    """

    record_key: str
    structure_id: str
    element: str
    exponent: int
    QAMS: float | None
    DAMS: float | None
    IAMS: float
    density: float
    spacegroup_norm: float
    n_d: float | None
    en_mean: float
    en_std: float
    in_domain: bool
    domain_notes: list[str] = field(default_factory=list)
    spacegroup: int = 0
    formula: str = ""
    oxidation_method: str | None = None
    basis: list[list[float]] = field(default_factory=list)
    basis_source: str = ""
    n_sites: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able dictionary of every field."""
        return asdict(self)

    def feature_vector(self) -> list[float | None]:
        """The model inputs in :data:`FEATURE_COLUMNS` order."""
        return [getattr(self, name) for name in FEATURE_COLUMNS]


def featurize_record(record: Record, exponent: int = DEFAULT_FEATURE_EXPONENT) -> FeatureRow:
    """Compute the feature row of a record.

    Args:
        record: The record (structure, element, basis, clusters).
        exponent: Feature weight exponent n of w = r^-n.

    Returns:
        The features, with an in-domain flag and the reasons when out of domain.

    Raises:
        StructureError: IAMS is undefined (an absorber without neighbours).
    """
    clusters = [record.site_clusters[i] for i in record.absorber_indices]
    moments = moment_anisotropies(clusters, record.basis, exponent)
    iams = moments["IAMS"]
    if iams is None:
        raise StructureError(
            f"{record.key}: IAMS is undefined (an absorber site without neighbours)",
            reason=Reason.ISOLATED_SITE,
        )
    notes = domain_notes(record, moments["QAMS"] is None)
    return FeatureRow(
        record_key=record.key,
        structure_id=record.structure_id,
        element=record.element,
        exponent=int(exponent),
        QAMS=moments["QAMS"],
        DAMS=moments["DAMS"],
        IAMS=iams,
        density=mass_density(record.structure),
        spacegroup_norm=record.spacegroup / 230.0,
        n_d=d_electron_count(clusters, record.element),
        en_mean=float(np.mean([_electronegativity_stats(c)[0] for c in clusters])),
        en_std=float(np.mean([_electronegativity_stats(c)[1] for c in clusters])),
        in_domain=not notes,
        domain_notes=notes,
        spacegroup=record.spacegroup,
        formula=record.structure.composition.reduced_formula,
        oxidation_method=record.oxidation.method,
        basis=record.basis.tolist(),
        basis_source=record.basis_source,
        n_sites=len(clusters),
    )


def moment_anisotropies(
    clusters: Sequence[Cluster], basis: np.ndarray, exponent: float
) -> dict[str, float | None]:
    """QAMS, DAMS and IAMS averaged over the sites, and their :data:`CRYSTAL_SUMS`.

    The tensors are expressed in ``basis``.

    A charge-dependent sum is None if any site lacks charges or has vanishing magnitude.
    """
    return _moment_sums(clusters, basis, [exponent])[0]


def _moment_sums(
    clusters: Sequence[Cluster], basis: np.ndarray, exponents: Sequence[float]
) -> list[dict[str, float | None]]:
    """Per exponent, the site averages of QAMS, DAMS and IAMS and the :data:`CRYSTAL_SUMS`.

    None where undefined.
    """
    per_site = [
        normalized_diagonals_by_exponent(
            c.coords[c.neighbors],
            None if c.charges is None else c.charges[c.neighbors],
            basis,
            np.asarray(exponents, dtype=float),
        )
        for c in clusters
    ]
    sums = {}
    for name in MOMENT_SUMS:
        diagonals = np.stack([site[name] for site in per_site])  # (sites, exponents, 3)
        sums[name] = pair_sum(diagonals).mean(axis=0)
        sums[CRYSTAL_SUMS[name]] = pair_sum(diagonals.mean(axis=0))
    return [
        {name: _finite_or_none(values[k]) for name, values in sums.items()}
        for k in range(len(exponents))
    ]


def _finite_or_none(value: float) -> float | None:
    """A float, or None for NaN (a charge feature that is undefined)."""
    return None if np.isnan(value) else float(value)


def d_electron_count(clusters: Sequence[Cluster], element: str) -> float | None:
    """Site-averaged Z − q − 18 of the absorber, or None without oxidation states."""
    charges = [cluster.charges for cluster in clusters if cluster.charges is not None]
    if len(charges) < len(clusters):
        return None
    atomic_number = Element(element).Z
    return float(np.mean([atomic_number - q[0] - 18 for q in charges]))


@cache
def pauling_electronegativity(symbol: str) -> float:
    """Pauling electronegativity of an element (NaN where it has none, e.g. noble gases)."""
    return float(Element(symbol).X)


@cache
def _atomic_mass(symbol: str) -> float:
    """Standard atomic mass, u."""
    return float(Element(symbol).atomic_mass)


def mass_density(structure: Structure) -> float:
    """Mass density, g/cm³ (pymatgen's ``Structure.density`` without its unit objects)."""
    mass = sum(_atomic_mass(site.specie.symbol) for site in structure)
    return mass * GRAMS_PER_DALTON / (structure.volume * CUBIC_CM_PER_CUBIC_ANGSTROM)


def _electronegativity_stats(cluster: Cluster) -> tuple[float, float]:
    """Mean and population standard deviation of Pauling electronegativity over the cluster.

    Elements without a Pauling value (noble gases) are left out.
    """
    values = np.array([pauling_electronegativity(symbol) for symbol in cluster.species])
    values = values[np.isfinite(values)]
    return float(values.mean()), float(values.std())


def domain_notes(record: Record, charges_missing: bool) -> list[str]:
    """Why a record lies outside the paper's training domain (empty when inside)."""
    notes = []
    f_elements = sorted(F_ELEMENTS & set(record.structure.symbol_set))
    if f_elements:
        notes.append(f"contains f-electron element(s) {', '.join(f_elements)}")
    if charges_missing:
        notes.append(
            "oxidation states not assigned or all zero: "
            + (record.oxidation.message or "charge-weighted features are undefined")
        )
    return notes


def best_exponent(curve: Mapping[int, Mapping[str, Any]]) -> int:
    """The exponent whose QAMS and IAMS correlate best with SAMS (mean of the two r)."""

    def score(exponent: int) -> float:
        values = [curve[exponent][k] for k in ("QAMS_r", "IAMS_r")]
        return float(np.mean([v for v in values if v is not None] or [-np.inf]))

    return max(curve, key=score)


def moments_by_exponent(
    record: Record, exponents: Iterable[int] = SWEEP_EXPONENTS
) -> dict[str, dict[str, float | None]]:
    """QAMS, DAMS, IAMS and :data:`CRYSTAL_SUMS` of a record at every exponent.

    Keyed by ``str(n)`` (JSON-able).

    Stored beside the feature row so that the exponent can be re-chosen on labelled data
    without going back to the structures.
    """
    exponents = list(exponents)
    clusters = [record.site_clusters[i] for i in record.absorber_indices]
    sums = _moment_sums(clusters, record.basis, exponents)
    return {str(n): values for n, values in zip(exponents, sums, strict=True)}


def sweep_columns(sweep: Mapping[str, Mapping[str, float | None]]) -> dict[str, float | None]:
    """Flat ``QAMS@n``, ``QAMS_crystal@n``... columns of a :func:`moments_by_exponent` result.

    The form :mod:`vtc_fw.ml.table` reads the exponent sweep in.
    """
    return {
        sweep_column(name, int(n)): value
        for n, sums in sweep.items()
        for name, value in sums.items()
    }
