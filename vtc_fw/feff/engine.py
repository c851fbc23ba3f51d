"""One record's polarized VtC-XES: FEFF on each inequivalent site, symmetry for the rest.

Two routes give the crystal spectra along the record's basis axes (FEFF frame = basis frame):

* ``"axes"``: an equivalent site j sees the representative's cluster rotated by R'_j, so its
  spectrum along axis k is the representative's along R'_jᵀ e_k. Those directions (unique up to
  sign) are run on the representative's SCF.
* ``"sigma"``: six polarizations give the representative's dipole tensor σ; each equivalent
  site's σ is R'_j σ R'_jᵀ.

``"auto"`` takes the route with fewer FEFF polarization runs. The crystal spectrum is the mean
over all absorber sites of the cell (multiplicity-weighted over inequivalent sets).

The default route is ``"sigma"``: every record then also carries the crystal's dipole tensor σ(E)
(the mean of the sites' σ, in the structure's Cartesian frame), which gives the spectrum for any
polarization without another FEFF run. The ``"axes"`` route gives the three basis spectra only.
"""

import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vtc_fw.errors import FeffError, FeffRunError, Reason
from vtc_fw.feff.inputs import XesInputSet, preset_settings
from vtc_fw.feff.ladder import Attempt, ends_the_ladder, rungs_to_try
from vtc_fw.feff.parse import count_failures, read_xmu, scf_converged
from vtc_fw.feff.run import (
    FMS_STAGES,
    POLARIZATION_STAGES,
    SCF_STAGES,
    FeffCall,
    copy_scf,
    prune_copies,
    run_stages,
)
from vtc_fw.science.anisotropy import (
    SIX_POLARIZATIONS,
    common_grid,
    rotate_sigma,
    sam_matrix,
    sigma_components,
    sigma_from_components,
    sigma_from_polarizations,
)
from vtc_fw.science.records import AbsorberSite, Record
from vtc_fw.settings import DEFAULT_PRESET

ROUTES = ("auto", "axes", "sigma")


@dataclass
class SiteSpectra:
    """FEFF spectra of one representative site for several polarizations.

    Attributes:
        site_index: The representative site.
        multiplicity: Number of equivalent sites it stands for.
        directions: Polarizations run, FEFF (basis) frame, shape (P, 3).
        energies: Energy grid, eV, shape (E,).
        mu: Spectra, shape (P, E).
        rung: Ladder rung that succeeded.
        scf_converged: SCF flag of FEFF (None: no SCF).
        stages: Wall seconds per FEFF stage, summed over its calls.
        cpu_s: CPU seconds of its FEFF processes (all attempts).
        cards: FEFF cards of the successful attempt, polarization left out.
    """

    site_index: int
    multiplicity: int
    directions: np.ndarray
    energies: np.ndarray
    mu: np.ndarray
    rung: str
    scf_converged: bool | None
    stages: dict[str, float]
    cpu_s: float
    cards: dict[str, str]

    def summary(self) -> dict[str, Any]:
        """JSON-able summary without the spectra."""
        return {
            "site_index": self.site_index,
            "multiplicity": self.multiplicity,
            "n_polarizations": len(self.directions),
            "rung": self.rung,
            "scf_converged": self.scf_converged,
            "stages": self.stages,
            "cpu_s": self.cpu_s,
        }


@dataclass
class RecordSpectra:
    """Crystal spectra along a record's basis axes and their anisotropy.

    Attributes:
        record_key: ``"{structure_id}:{element}"``.
        preset: Preset name.
        cards: FEFF cards of the first site (radii are per site), polarization left out.
        energies: Common energy grid, eV, shape (E,).
        mu: Crystal spectra along the basis axes, shape (3, E).
        sam: 3×3 spectral anisotropy matrix.
        sams: SAM_12 + SAM_13 + SAM_23.
        route: ``"axes"`` or ``"sigma"``.
        sigma: Crystal dipole tensor in the structure's Cartesian frame, shape (E, 3, 3)
            (``"sigma"`` route only; None otherwise).
        sites: Per inequivalent site: index, multiplicity, rung, stage seconds, CPU seconds.
        attempts: Every FEFF attempt (site, rung, SCF settings, ok, reason).
        cpu_s: CPU seconds of all FEFF processes.
        wall_s: Wall seconds of the whole record.
        stages: Wall seconds per FEFF stage, summed over all calls.
        feff_version: ``"feff10-rs <version>"`` or the external command.
        archive: Path of the compressed work directory, or None.
    """

    record_key: str
    preset: str
    cards: dict[str, str]
    energies: np.ndarray
    mu: np.ndarray
    sam: np.ndarray
    sams: float
    route: str
    sites: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    cpu_s: float
    wall_s: float
    stages: dict[str, float]
    feff_version: str
    archive: str | None = None
    sigma: np.ndarray | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (arrays as lists; σ as its six components, shape (6, E))."""
        d = asdict(self)
        for key in ("energies", "mu", "sam"):
            d[key] = np.asarray(d[key]).tolist()
        d["sigma"] = None if self.sigma is None else sigma_components(self.sigma).tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RecordSpectra":
        """Inverse of :meth:`as_dict`."""
        arrays: dict[str, np.ndarray | None] = {
            key: np.asarray(d[key], dtype=float) for key in ("energies", "mu", "sam")
        }
        sigma = d.get("sigma")
        arrays["sigma"] = None if sigma is None else sigma_from_components(sigma)
        return cls(**{**d, **arrays})


@dataclass
class Budget:
    """Wall-clock deadline and accumulated timings of one record.

    Attributes:
        timeout_s: Wall-clock limit of the record, s (None: none).
        start: ``time.perf_counter()`` at the start.
        cpu_s: CPU seconds of the FEFF processes so far.
        stages: Wall seconds per FEFF stage so far.
    """

    timeout_s: float | None
    start: float = field(default_factory=time.perf_counter)
    cpu_s: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)

    def remaining(self) -> float | None:
        """Seconds left (None: no limit); raises FeffError ``timeout`` when none are."""
        if self.timeout_s is None:
            return None
        left = self.timeout_s - (time.perf_counter() - self.start)
        if left <= 0:
            raise FeffError(f"record exceeded its {self.timeout_s:g} s limit", reason="timeout")
        return left

    def add(self, call: FeffCall, stages: dict[str, float]) -> None:
        """Account for one FEFF call, also in a site's own ``stages``."""
        self.cpu_s += call.cpu_s
        for name, seconds in call.stages.items():
            stages[name] = stages.get(name, 0.0) + seconds
            self.stages[name] = self.stages.get(name, 0.0) + seconds


def basis_rotations(record: Record, site: AbsorberSite) -> list[np.ndarray]:
    """Each equivalent site's rotation in the basis (FEFF) frame: R' = Vᵀ R V."""
    basis = record.basis
    return [basis.T @ rotation @ basis for rotation in site.rotations]


def axis_directions(rotations: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Directions to run for the axes route, unique up to sign.

    Returns:
        ``(directions (P, 3), index (J, 3))`` with ``index[j, k]`` the direction that gives
        equivalent site j's spectrum along axis k (μ(e) = μ(−e)).
    """
    directions: list[np.ndarray] = []
    index = np.zeros((len(rotations), 3), dtype=int)
    for j, rotation in enumerate(rotations):
        for k in range(3):
            wanted = rotation.T[:, k]
            match = next(
                (p for p, d in enumerate(directions) if abs(abs(d @ wanted) - 1) < 1e-6), None
            )
            if match is None:
                directions.append(wanted)
                match = len(directions) - 1
            index[j, k] = match
    return np.array(directions), index


def choose_route(record: Record, route: str) -> str:
    """``"axes"`` or ``"sigma"``: the requested one, or the one with fewer FEFF runs."""
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, got {route!r}")
    if route != "auto":
        return route
    n_axes = sum(len(axis_directions(basis_rotations(record, s))[0]) for s in record.absorber_sites)
    return "axes" if n_axes <= 6 * len(record.absorber_sites) else "sigma"


def site_input(record: Record, site_index: int, preset: str | dict[str, Any]) -> XesInputSet:
    """The unpolarized input set of one site, cluster listed to shell radius + margin.

    An SCF with its own ``shell_atoms`` keeps its radius a fraction of that neighbour shell of
    the site (an SCF held at 30 atoms while FMS follows a larger cluster); it is written as the
    equivalent fraction of the record's shell.
    """
    settings = preset_settings(preset)
    shell = record.cluster(site_index).shell_radius
    scf = settings.get("scf")
    if scf and "shell_atoms" in scf:
        scf_record = record.with_shell_atoms(scf.pop("shell_atoms"))
        scf["radius"] *= scf_record.cluster(site_index).shell_radius / shell
    cluster = record.cluster(site_index, radius=shell + settings["list_margin"])
    title = [f"{record.key} site {site_index} ({record.element} K-edge VtC-XES, vtc-fw)"]
    return XesInputSet.from_cluster(cluster, record.basis, settings, title=title)


@dataclass
class SiteRun:
    """What FEFF gave on one site: the spectra of the rung that succeeded, and every attempt.

    Attributes:
        energies: Energy grid, eV, shape (E,).
        mu: Spectra along the requested directions, shape (P, E).
        rung: Ladder rung that succeeded.
        scf: Its SCF settings (None: no SCF).
        scf_converged: SCF flag of FEFF (None: no SCF).
        stages: Wall seconds per FEFF stage, summed over every attempt.
        attempts: Every attempt on this site, the successful one last.
    """

    energies: np.ndarray
    mu: np.ndarray
    rung: str
    scf: dict[str, Any] | None
    scf_converged: bool | None
    stages: dict[str, float]
    attempts: list[Attempt]


def run_site(
    inputs: XesInputSet,
    site_index: int,
    directions: np.ndarray,
    directory: Path,
    budget: Budget,
    feff_cmd: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> SiteRun:
    """SCF once, then one FEFF run per direction; climb the ladder on failure.

    Raises:
        FeffRunError: Every rung failed, or the time ran out; ``attempts`` holds every try.
    """
    attempts: list[Attempt] = []
    stages: dict[str, float] = {}
    for rung, scf in rungs_to_try(inputs.settings.get("scf")):
        start = time.perf_counter()
        try:
            energies, mu, converged = _try_rung(
                inputs.with_scf(scf), directions, directory / rung.name, budget, feff_cmd, stages
            )
        except FeffError as error:
            wall_s = time.perf_counter() - start
            attempts.append(
                Attempt(site_index, rung.name, scf, False, error.reason, str(error), wall_s)
            )
            if progress:
                progress(f"site {site_index}: rung {rung.name} failed ({error.reason})")
            if ends_the_ladder(error.reason):
                break
            continue
        attempts.append(
            Attempt(site_index, rung.name, scf, True, wall_s=time.perf_counter() - start)
        )
        return SiteRun(energies, mu, rung.name, scf, converged, stages, attempts)
    last = attempts[-1]
    raise FeffRunError(
        f"FEFF failed on site {site_index} after {len(attempts)} attempt(s); last: {last.message}",
        attempts=attempts,
        reason=Reason.TIMEOUT if ends_the_ladder(last.reason) else None,
    )


def _try_rung(
    inputs: XesInputSet,
    directions: np.ndarray,
    directory: Path,
    budget: Budget,
    feff_cmd: str | None,
    stages: dict[str, float],
) -> tuple[np.ndarray, np.ndarray, bool | None]:
    """One rung: SCF, its checks, the Green's function, then every polarization.

    Raises FeffError on any failure.
    """
    scf_directory = directory / "scf"
    call = run_stages(inputs, scf_directory, SCF_STAGES, feff_cmd, budget.remaining())
    budget.add(call, stages)
    converged = scf_converged(scf_directory) if inputs.settings.get("scf") else None
    if converged is False and inputs.settings["scf"].get("require_convergence", True):
        # FEFF repeats an iteration after "bad counts" itself: only fatal if it never converged
        bad_counts = count_failures(scf_directory)
        reason = "scf_bad_counts" if bad_counts else "scf_not_converged"
        raise FeffError(bad_counts or "the SCF loop did not converge", reason=reason)
    if feff_cmd is None:  # an external FEFF recomputes the Green's function per polarization
        call = run_stages(inputs, scf_directory, FMS_STAGES, None, budget.remaining())
        budget.add(call, stages)
    spectra = []
    for p, direction in enumerate(directions):
        pol_directory = copy_scf(scf_directory, directory / f"pol{p}")
        call = run_stages(
            inputs.with_polarization(direction),
            pol_directory,
            POLARIZATION_STAGES,
            feff_cmd,
            budget.remaining(),
        )
        budget.add(call, stages)
        spectra.append(read_xmu(pol_directory))
        prune_copies(scf_directory, pol_directory)
    energies = spectra[0][0]
    if any(e.shape != energies.shape or not np.allclose(e, energies) for e, _ in spectra):
        raise FeffError("polarizations of one site gave different energy grids", "grid_mismatch")
    return energies, np.array([mu for _, mu in spectra]), converged


def _site_sums(
    route: str, site_spectra: SiteSpectra, rotations: list[np.ndarray], index: np.ndarray | None
) -> np.ndarray:
    """Sum over a site's equivalents, basis frame: the axis spectra (3, E) or σ (E, 3, 3)."""
    if route == "axes":
        assert index is not None, "the axes route computes a direction index per site"
        return _array_sum(site_spectra.mu[index[j]] for j in range(len(rotations)))
    sigma = sigma_from_polarizations(site_spectra.mu)
    return _array_sum(rotate_sigma(sigma, rotation) for rotation in rotations)


def _array_sum(arrays: Iterable[np.ndarray]) -> np.ndarray:
    """The built-in ``sum`` of arrays (0 + a₁ + a₂ + …, in this order), typed as an array.

    Raises:
        ValueError: ``arrays`` is empty (the built-in would give the integer 0).
    """
    total: np.ndarray | None = None
    for array in arrays:
        total = 0 + array if total is None else total + array
    if total is None:
        raise ValueError("no arrays to sum")
    return total


def compute_record_spectra(
    record: Record,
    preset: str | dict[str, Any] = DEFAULT_PRESET,
    workdir: Path | str = Path("feff_runs"),
    *,
    feff_cmd: str | None = None,
    timeout_s: float | None = None,
    route: str = "sigma",
    progress: Callable[[str], None] | None = None,
    keep_files: bool = False,
) -> RecordSpectra:
    """Polarized crystal VtC-XES of one record along its basis axes, with SAM and SAMS.

    Args:
        record: The record (structure, absorber element, sites, basis).
        preset: Name of a preset in ``presets.yaml`` (``paper``, ``fast``, ``smoke``), or a
            settings dict of the same form (its ``name`` key, if any, is recorded).
        workdir: Directory for this record's FEFF runs; compressed to ``<workdir>.tar.gz``.
        feff_cmd: External FEFF command (None: the ``feff10`` package in-process).
        timeout_s: Wall-clock limit for the whole record, s.
        route: ``"sigma"`` (default: σ too), ``"axes"`` or ``"auto"`` (see module docstring).
        progress: Called with one line of text after each site or failure.
        keep_files: Keep the uncompressed work directory beside the archive.

    Returns:
        The record's spectra, SAM, SAMS, timings and every FEFF attempt.

    Raises:
        FeffRunError: A site failed on every rung of the ladder or the time ran out;
            ``.attempts`` lists every attempt.
    """
    shell_atoms = preset_settings(preset).get("shell_atoms")
    record = record.with_shell_atoms(shell_atoms) if shell_atoms else record
    chosen = choose_route(record, route)
    workdir = Path(workdir)
    budget = Budget(timeout_s)
    attempts: list[Attempt] = []
    sums, sites = [], []
    try:
        for site in record.absorber_sites:
            site_spectra, rotations, index, site_attempts = _compute_site(
                record, site, preset, chosen, workdir, budget, feff_cmd, progress
            )
            attempts += site_attempts
            sums.append((site_spectra.energies, _site_sums(chosen, site_spectra, rotations, index)))
            sites.append(site_spectra)
    except FeffError as error:
        _archive(workdir, keep_files)
        attempts += error.attempts if isinstance(error, FeffRunError) else []
        raise FeffRunError(f"{record.key}: {error}", attempts, error.reason) from error
    if chosen == "sigma":  # resample along the energy axis, first of σ's (E, 3, 3)
        sums = [(energies, np.moveaxis(total, 0, -1)) for energies, total in sums]
    energies, resampled = common_grid(sums)
    n_sites = sum(s.multiplicity for s in sites)
    crystal = _array_sum(resampled) / n_sites
    sigma = None
    if chosen == "sigma":
        sigma_basis = np.moveaxis(crystal, -1, 0)
        mu = np.diagonal(sigma_basis, axis1=1, axis2=2).T
        sigma = rotate_sigma(sigma_basis, record.basis)  # basis frame → Cartesian: V σ Vᵀ
    else:
        mu = crystal
    sam = sam_matrix(energies, mu)
    return RecordSpectra(
        record_key=record.key,
        preset=preset if isinstance(preset, str) else preset.get("name", "custom"),
        cards=sites[0].cards,
        energies=energies,
        mu=mu,
        sam=sam,
        sams=float(np.triu(sam, k=1).sum()),
        route=chosen,
        sites=[s.summary() for s in sites],
        attempts=[a.as_dict() for a in attempts],
        cpu_s=budget.cpu_s,
        wall_s=time.perf_counter() - budget.start,
        stages=budget.stages,
        feff_version=_feff_version(feff_cmd),
        archive=_archive(workdir, keep_files),
        sigma=sigma,
    )


def _compute_site(
    record: Record,
    site: AbsorberSite,
    preset: str | dict[str, Any],
    route: str,
    workdir: Path,
    budget: Budget,
    feff_cmd: str | None,
    progress: Callable[[str], None] | None,
) -> tuple[SiteSpectra, list[np.ndarray], np.ndarray | None, list[Attempt]]:
    rotations = basis_rotations(record, site)
    if route == "axes":
        directions, index = axis_directions(rotations)
    else:
        directions, index = SIX_POLARIZATIONS, None
    inputs = site_input(record, site.index, preset)
    cpu_before = budget.cpu_s
    run = run_site(
        inputs, site.index, directions, workdir / f"site{site.index}", budget, feff_cmd, progress
    )
    site_spectra = SiteSpectra(
        site_index=site.index,
        multiplicity=site.multiplicity,
        directions=directions,
        energies=run.energies,
        mu=run.mu,
        rung=run.rung,
        scf_converged=run.scf_converged,
        stages=run.stages,
        cpu_s=budget.cpu_s - cpu_before,
        cards=inputs.with_scf(run.scf).cards,
    )
    if progress:
        progress(
            f"site {site.index} (×{site.multiplicity}): {len(directions)} polarizations, "
            f"rung {run.rung}, {site_spectra.cpu_s:.1f} CPU-s"
        )
    return site_spectra, rotations, index, run.attempts


def _archive(workdir: Path, keep_files: bool) -> str | None:
    """Compress the work directory to ``<workdir>.tar.gz``; remove it unless kept."""
    if not workdir.is_dir():
        return None
    archive = shutil.make_archive(
        str(workdir), "gztar", root_dir=workdir.parent, base_dir=workdir.name
    )
    if not keep_files:
        shutil.rmtree(workdir)
    return archive


def _feff_version(feff_cmd: str | None) -> str:
    if feff_cmd is not None:
        return f"external: {feff_cmd}"
    import feff10

    return f"feff10-rs {feff10.__version__}"  # type: ignore[attr-defined]  # stub omits it
