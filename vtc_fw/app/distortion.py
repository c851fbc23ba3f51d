"""The paper's Figure 3: QAMS and SAMS of NiO and Cr2O3 strained along c.

NiO (rock salt, a = 4.1771 Å) is stretched along the cubic c axis; Cr2O3 (corundum, R-3c,
a = 4.9607 Å, c = 13.599 Å, Cr 12c z = 0.3475, O 18e x = 0.3058) is compressed or stretched
along its hexagonal c axis with fractional coordinates kept.
"""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Lattice, Structure

from vtc_fw.feff.engine import compute_record_spectra
from vtc_fw.science.features import featurize_record
from vtc_fw.science.records import make_records
from vtc_fw.settings import DEFAULT_PRESET

NIO_A = 4.1771
"""Rock-salt NiO lattice parameter, Å."""
CR2O3_A, CR2O3_C = 4.9607, 13.599
"""Corundum Cr2O3 hexagonal lattice parameters, Å."""
NIO_STRAINS: tuple[float, ...] = tuple(np.round(np.arange(0.0, 5.01, 0.5), 2))
"""NiO stretch along c, % (0–5 % in 0.5 % steps, as in the paper)."""
CR2O3_STRAINS: tuple[float, ...] = tuple(np.round(np.arange(-5.0, 5.01, 0.5), 2))
"""Cr2O3 strain along c, % (−5 % to +5 %)."""


def nio_structure(strain_percent: float = 0.0) -> Structure:
    """Primitive rock-salt NiO with the cubic c axis scaled by (1 + strain/100)."""
    lattice = Lattice.tetragonal(NIO_A, NIO_A * (1 + strain_percent / 100))
    fcc: list[list[float]] = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    oxygen = [[(x + 0.5) % 1, y, z] for x, y, z in fcc]
    conventional = Structure(lattice, ["Ni"] * 4 + ["O"] * 4, fcc + oxygen)
    return conventional.get_primitive_structure()


def cr2o3_structure(strain_percent: float = 0.0) -> Structure:
    """Primitive (rhombohedral) Cr2O3 with the hexagonal c axis scaled by (1 + strain/100)."""
    lattice = Lattice.hexagonal(CR2O3_A, CR2O3_C * (1 + strain_percent / 100))
    hexagonal = Structure.from_spacegroup(
        "R-3c", lattice, ["Cr", "O"], [[0, 0, 0.3475], [0.3058, 0, 0.25]]
    )
    return hexagonal.get_primitive_structure()


MATERIALS: dict[str, tuple[Callable[[float], Structure], str, tuple[float, ...]]] = {
    "nio": (nio_structure, "Ni", NIO_STRAINS),
    "cr2o3": (cr2o3_structure, "Cr", CR2O3_STRAINS),
}
"""Series name → (structure builder, absorber, default strains in %)."""


def distortion_series(
    material: str,
    strains: Sequence[float] | None = None,
    preset: str = DEFAULT_PRESET,
    workdir: Path | str = Path("distortion_runs"),
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """QAMS, IAMS and SAMS of a strained series.

    Args:
        material: ``"nio"`` or ``"cr2o3"``.
        strains: Strains along c, % (default: the paper's series).
        preset: FEFF preset.
        workdir: Parent of the per-step FEFF work directories.
        progress: Called with one line per step.

    Returns:
        One row per strain: ``strain_percent, QAMS, IAMS, SAMS, cpu_s, route``.
    """
    build, element, default_strains = MATERIALS[material]
    rows = []
    for strain in default_strains if strains is None else strains:
        record = make_records(
            build(strain), structure_id=f"{material}_{strain:+.1f}", elements=[element]
        )[0]
        features = featurize_record(record)
        spectra = compute_record_spectra(
            record, preset, Path(workdir) / f"{material}_{strain:+.1f}"
        )
        row = {
            "strain_percent": float(strain),
            "QAMS": features.QAMS,
            "IAMS": features.IAMS,
            "SAMS": spectra.sams,
            "cpu_s": spectra.cpu_s,
            "route": spectra.route,
        }
        rows.append(row)
        if progress:
            progress(
                f"{material} {strain:+.1f} %: QAMS {features.QAMS:.4f} SAMS {spectra.sams:.4f}"
            )
    return rows


def series_summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Linearity and minima of a series: what Fig. 3 of the paper is read for.

    Returns:
        ``r2_SAMS`` and ``r2_QAMS`` (R² of a straight line against the strain), and the strains
        (%) of the smallest SAMS and QAMS.
    """
    strain = np.array([r["strain_percent"] for r in rows])
    summary = {}
    for key in ("SAMS", "QAMS"):
        values = np.array([r[key] for r in rows], dtype=float)
        fit = np.polyval(np.polyfit(strain, values, 1), strain)
        spread = np.sum((values - values.mean()) ** 2)
        summary[f"r2_{key}"] = float(1 - np.sum((values - fit) ** 2) / spread) if spread else 1.0
        summary[f"min_strain_{key}"] = float(strain[np.argmin(values)])
    return summary
