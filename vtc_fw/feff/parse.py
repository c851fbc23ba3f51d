"""Reading FEFF10 outputs: the spectrum in ``xmu.dat`` and the SCF convergence record."""

from pathlib import Path

import numpy as np

from vtc_fw.errors import FeffError

XMU_ENERGY_COLUMN = 0
"""``omega``: absolute emission energy, eV."""
XMU_MU_COLUMN = 3
"""``mu``: the polarized spectrum (FEFF's normalisation)."""


def read_xmu(directory: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Energies (eV) and μ from ``xmu.dat``, checked for a usable spectrum.

    Args:
        directory: A FEFF work directory.

    Returns:
        ``(energies (E,), mu (E,))`` sorted by increasing energy.

    Raises:
        FeffError: ``missing_xmu``, ``empty_spectrum``, ``nan_spectrum`` or ``zero_spectrum``.
    """
    path = Path(directory) / "xmu.dat"
    if not path.is_file():
        raise FeffError(f"{path} was not written", reason="missing_xmu")
    try:
        table = np.loadtxt(path, comments="#", ndmin=2)
    except ValueError as error:
        raise FeffError(f"{path} is unreadable: {error}", reason="empty_spectrum") from error
    if table.shape[0] < 2 or table.shape[1] <= XMU_MU_COLUMN:
        raise FeffError(f"{path} holds no spectrum ({table.shape})", reason="empty_spectrum")
    energies, mu = table[:, XMU_ENERGY_COLUMN], table[:, XMU_MU_COLUMN]
    if not (np.all(np.isfinite(energies)) and np.all(np.isfinite(mu))):
        raise FeffError(f"{path} contains NaN or infinite values", reason="nan_spectrum")
    if not np.any(mu != 0):
        raise FeffError(f"{path} is identically zero", reason="zero_spectrum")
    order = np.argsort(energies, kind="stable")
    return energies[order], mu[order]


def scf_converged(directory: str | Path) -> bool | None:
    """Whether FEFF's SCF loop converged, from the flag column of ``convergence.scf``.

    Returns:
        True/False from the last iteration's flag, None when no SCF iteration was run.
    """
    path = Path(directory) / "convergence.scf"
    if not path.is_file():
        return None
    rows = [line.split() for line in path.read_text().splitlines()]
    flags = [row[-1] for row in rows if row and row[0].isdigit()]
    return flags[-1] == "1" if flags else None


def count_failures(directory: str | Path) -> str | None:
    """A known FEFF failure message found in the logs (``bad counts`` of the SCF), or None."""
    for log in sorted(Path(directory).glob("log*.dat")):
        text = log.read_text(errors="replace").lower()
        if "bad counts" in text:
            return f"{log.name}: SCF reported bad counts"
    return None
