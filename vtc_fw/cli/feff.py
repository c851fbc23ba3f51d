"""FEFF on one record from the command line: ``vtc-fw sams``, ``spectra`` and ``distortion``.

``sams``: one record with FEFF10, no database; ``spectra``: μ for any polarization from σ and
the paper's Fig. 2; ``distortion``: the paper's Fig. 3.
"""

import csv
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from vtc_fw.cli.options import db_config_option
from vtc_fw.db.config import DbConfig
from vtc_fw.errors import VtcError
from vtc_fw.feff.inputs import PRESETS
from vtc_fw.settings import DEFAULT_PRESET


@click.command("sams")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--element", "-e", required=True, help="Absorbing 3d element, e.g. Ni.")
@click.option(
    "--preset", type=click.Choice(sorted(PRESETS)), default=DEFAULT_PRESET, show_default=True
)
@click.option("--route", type=click.Choice(["auto", "axes", "sigma"]), default="sigma")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where FEFF runs (kept as <workdir>/<id>.tar.gz); default: a temporary folder.",
)
@click.option("--timeout", "timeout_s", type=float, default=None, help="Wall-clock limit, s.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON (keys SAMS, SAM, cpu_s, stages, SAMS_max, basis_max, axes_max_uvw, A_inv, "
    "best_pair).",
)
def sams_command(
    path: Path,
    element: str,
    preset: str,
    route: str,
    workdir: Path | None,
    timeout_s: float | None,
    as_json: bool,
) -> None:
    """Compute SAMS of one structure file (CIF, POSCAR...) for absorber ELEMENT with FEFF10.

    With σ (route sigma, the default) also SAMS_max (the largest SAMS of any basis), its basis
    and nearest lattice directions [uvw], the rotation-invariant A_inv and the best pair of
    orthogonal polarizations (docs/ARCHITECTURE.md, "Orientations from σ").
    """
    try:
        record, spectra = _run_feff(path, element, preset, route, workdir, timeout_s)
    except (VtcError, ValueError, OSError) as error:
        _fail(error, as_json)
    summary = {
        "record_key": spectra.record_key,
        "preset": preset,
        "route": spectra.route,
        "SAMS": spectra.sams,
        "SAM": spectra.sam.tolist(),
        "cpu_s": spectra.cpu_s,
        "wall_s": spectra.wall_s,
        "stages": spectra.stages,
        "feff_version": spectra.feff_version,
        "archive": spectra.archive if workdir else None,
        **_orientation_keys(spectra, record),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{spectra.record_key}  preset {preset}  route {spectra.route}")
    click.echo(f"SAMS  {spectra.sams:.5f}")
    click.echo("SAM\n" + np.array2string(spectra.sam, precision=5, suppress_small=True))
    _echo_orientation(summary)
    click.echo(f"CPU {spectra.cpu_s:.1f} s, wall {spectra.wall_s:.1f} s; per stage (wall s):")
    for stage, seconds in spectra.stages.items():
        click.echo(f"  {stage:<8} {seconds:8.2f}")


def _run_feff(
    path: Path,
    element: str,
    preset: str,
    route: str,
    workdir: Path | None,
    timeout_s: float | None,
) -> tuple[Any, Any]:
    """The record of a structure file and its FEFF spectra.

    FEFF's work files go to ``workdir`` or a temporary folder.
    """
    from vtc_fw.cli.features import record_of_file
    from vtc_fw.feff.engine import compute_record_spectra

    record = record_of_file(path, element, path.stem)
    with tempfile.TemporaryDirectory(prefix="vtc-fw-sams-") as scratch:
        root = workdir or Path(scratch)
        spectra = compute_record_spectra(
            record, preset, root / path.stem, timeout_s=timeout_s, route=route
        )
    return record, spectra


ORIENTATION_KEYS = ("SAMS_max", "basis_max", "axes_max_uvw", "A_inv", "best_pair")
"""Keys ``vtc-fw sams --json`` adds from σ (all null on the axes route, which has no σ)."""


def _orientation_keys(spectra: Any, record: Any) -> dict[str, Any]:
    from vtc_fw.science.anisotropy import orientation_summary

    if spectra.sigma is None:
        return dict.fromkeys(ORIENTATION_KEYS)
    lattice = record.structure.lattice
    return orientation_summary(spectra.energies, spectra.sigma, record.basis, lattice)


def _echo_orientation(summary: dict[str, Any]) -> None:
    if summary["SAMS_max"] is None:
        click.echo("SAMS_max, A_inv: need σ (route sigma)")
        return
    click.echo(f"SAMS_max  {summary['SAMS_max']:.5f}  along " + _uvw_text(summary["axes_max_uvw"]))
    click.echo(f"A_inv  {summary['A_inv']:.5f}")
    pair = summary["best_pair"]
    click.echo(f"best pair  SAM {pair['value']:.5f}  along " + _uvw_text(pair["uvw"]))


def _uvw_text(directions: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"[{' '.join(map(str, d['uvw']))}] ({d['angle_deg']:.1f}°)" for d in directions
    )


def _fail(error: Exception, as_json: bool) -> None:
    reason = getattr(error, "reason", type(error).__name__)
    if as_json:
        click.echo(json.dumps({"error": str(error), "reason": reason}))
        raise SystemExit(1)
    raise click.ClickException(f"{error} [{reason}]")


@dataclass(frozen=True)
class SigmaSource:
    """What ``vtc-fw spectra`` needs of a record: σ(E) and where it came from.

    Attributes:
        record_key: ``"{structure_id}:{element}"``.
        preset: FEFF preset of σ.
        energies: Energy grid, eV, shape (E,).
        sigma: Crystal dipole tensor, Cartesian frame, shape (E, 3, 3).
        basis: The record's basis V (columns = axes).
        lattice: The structure's lattice, or None when unknown (no [uvw] then).
    """

    record_key: str
    preset: str
    energies: np.ndarray
    sigma: np.ndarray
    basis: np.ndarray
    lattice: Any


def _polarizations(_ctx: Any, _param: Any, values: tuple[str, ...]) -> list[np.ndarray]:
    return [_three_numbers(value, float) for value in values]


def _lattice_indices(_ctx: Any, _param: Any, values: tuple[str, ...]) -> list[np.ndarray]:
    return [_three_numbers(value, int) for value in values]


def _three_numbers(text: str, kind: type) -> np.ndarray:
    """Three numbers separated by spaces or commas, not all zero (a direction)."""
    parts = text.replace(",", " ").split()
    try:
        numbers = np.array([kind(part) for part in parts], dtype=float)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not three {kind.__name__} numbers") from None
    if numbers.size != 3 or not np.all(np.isfinite(numbers)):
        raise click.BadParameter(f"{text!r} is not three finite {kind.__name__} numbers")
    if not np.linalg.norm(numbers) > 0:
        raise click.BadParameter(f"{text!r} has zero length: a polarization needs a direction")
    return numbers


@click.command("spectra")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--element", "-e", default=None, help="Absorbing 3d element (with PATH).")
@click.option("--record", "record_key", default=None, help="A stored record, e.g. 'id:Fe'.")
@click.option(
    "--polarization",
    "polarizations",
    multiple=True,
    callback=_polarizations,
    help='Cartesian polarization, e.g. "1 0 0" (repeatable).',
)
@click.option(
    "--uvw",
    "lattice_indices",
    multiple=True,
    callback=_lattice_indices,
    help="Polarization along the lattice direction [uvw], e.g. 0,0,1 (repeatable).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write <record>_spectra.csv and the Fig. 2 PNG here (default: CSV to stdout).",
)
@click.option(
    "--preset",
    type=click.Choice(sorted(PRESETS)),
    default=None,
    help="FEFF preset (PATH: default paper; --record: default the newest task of any preset).",
)
@db_config_option
@click.option("--timeout", "timeout_s", type=float, default=None, help="FEFF wall limit, s.")
def spectra_command(
    path: Path | None,
    element: str | None,
    record_key: str | None,
    polarizations: list[np.ndarray],
    lattice_indices: list[np.ndarray],
    out: Path | None,
    preset: str | None,
    config: DbConfig,
    timeout_s: float | None,
) -> None:
    """μ(ε, E) = εᵀσ(E)ε of one record for any polarization, and the paper's Fig. 2.

    σ comes from FEFF10 on PATH (absorber ELEMENT) or from the newest successful task of
    --record in the database. Without --polarization/--uvw: the record's three basis axes.
    """
    if path is not None and record_key is None:
        if element is None:
            raise click.UsageError("PATH needs --element")
        source = _sigma_from_file(path, element, preset or DEFAULT_PRESET, timeout_s)
    elif path is None and record_key is not None:
        source = _sigma_from_database(record_key, preset, config)
    else:
        raise click.UsageError("give either PATH (with --element) or --record KEY")
    labels, directions = _requested_directions(source, polarizations, lattice_indices)
    table = _spectra_table(source, labels, directions)
    if out is None:
        click.echo(table, nl=False)
        return
    _write_spectra(source, table, out)


def _sigma_from_file(path: Path, element: str, preset: str, timeout_s: float | None) -> SigmaSource:
    try:
        record, spectra = _run_feff(path, element, preset, "sigma", None, timeout_s)
    except (VtcError, ValueError, OSError) as error:
        _fail(error, as_json=False)
    return SigmaSource(
        spectra.record_key,
        spectra.preset,
        spectra.energies,
        spectra.sigma,
        record.basis,
        record.structure.lattice,
    )


def _sigma_from_database(record_key: str, preset: str | None, config: DbConfig) -> SigmaSource:
    from pymatgen.core import Structure

    from vtc_fw.documents.task import TASK_COLLECTION, newest_successful_task
    from vtc_fw.science.anisotropy import sigma_from_components

    client = config.client()
    try:
        tasks = config.collection(TASK_COLLECTION, client)
        task = newest_successful_task(tasks, record_key, preset)
        structure = None
        if task is not None:
            structure = config.collection("structures", client).find_one(
                {"structure_id": task["structure_id"]}
            )
    finally:
        client.close()
    with_preset = "" if preset is None else f" with preset {preset}"
    if task is None:
        raise click.ClickException(f"no successful task of record {record_key}{with_preset}")
    if task.get("sigma") is None:
        raise click.ClickException(
            f"record {record_key} (task {task['task_key']}) has no σ: it was computed with "
            "three polarizations only; recompute it (route sigma) for other polarizations"
        )
    lattice = None
    if structure is not None and structure.get("structure"):
        lattice = Structure.from_dict(structure["structure"]).lattice
    return SigmaSource(
        record_key,
        task["preset"],
        np.asarray(task["energies"], dtype=float),
        sigma_from_components(task["sigma"]),
        np.asarray(task["basis"], dtype=float),
        lattice,
    )


def _requested_directions(
    source: SigmaSource, polarizations: list[np.ndarray], lattice_indices: list[np.ndarray]
) -> tuple[list[str], list[np.ndarray]]:
    """Column labels and Cartesian directions: the requested ones, else the basis axes."""
    from vtc_fw.science.anisotropy import lattice_vector

    if lattice_indices and source.lattice is None:
        raise click.ClickException(
            f"--uvw needs the lattice of {source.record_key}: its structure is not in the database"
        )
    labels = [f"e({_numbers_text(p)})" for p in polarizations]
    labels += [f"[{_numbers_text(uvw)}]" for uvw in lattice_indices]
    directions = list(polarizations)
    directions += [lattice_vector(uvw, source.lattice) for uvw in lattice_indices]
    if not directions:
        labels = ["V1", "V2", "V3"]
        directions = list(source.basis.T)
    return labels, directions


def _numbers_text(numbers: np.ndarray) -> str:
    return " ".join(f"{x:g}" for x in numbers)


def _spectra_table(source: SigmaSource, labels: list[str], directions: list[np.ndarray]) -> str:
    """CSV: energy (eV), then μ along each direction (FEFF units)."""
    from vtc_fw.science.anisotropy import mu_along

    columns = [mu_along(source.sigma, direction) for direction in directions]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["energy_eV", *labels])
    for i, energy in enumerate(source.energies):
        writer.writerow([f"{energy:.4f}", *(f"{column[i]:.8g}" for column in columns)])
    return buffer.getvalue()


def _write_spectra(source: SigmaSource, table: str, out: Path) -> None:
    """The CSV and the Fig. 2 PNG in ``out``, then one summary line per file and number."""
    from vtc_fw.ml.plots import plot_polarized_spectra
    from vtc_fw.science.anisotropy import anisotropy_invariant, axis_spectra, sams_max

    out.mkdir(parents=True, exist_ok=True)
    stem = source.record_key.replace(":", "_").replace("/", "_") + f"_{source.preset}"
    csv_path = out / f"{stem}_spectra.csv"
    csv_path.write_text(table)
    maximum = sams_max(source.energies, source.sigma, source.basis)
    title = (
        f"{source.record_key} ({source.preset}): SAMS_max {maximum.value:.4f}, "
        f"A_inv {anisotropy_invariant(source.energies, source.sigma):.4f}"
    )
    figure = plot_polarized_spectra(
        source.energies,
        axis_spectra(source.sigma, source.basis),
        out / f"{stem}_fig2.png",
        labels=_axis_labels(source),
        title=title,
    )
    click.echo(f"wrote {csv_path} and {figure}")


def _axis_labels(source: SigmaSource) -> list[str]:
    """V1..V3, with their nearest lattice directions when the lattice is known."""
    from vtc_fw.science.anisotropy import lattice_directions

    if source.lattice is None:
        return ["V1", "V2", "V3"]
    nearest = lattice_directions(source.basis, source.lattice)
    return [
        f"V{k + 1} ≈ [{' '.join(map(str, d.uvw))}] ({d.angle_deg:.0f}°)"
        for k, d in enumerate(nearest)
    ]


@click.command("distortion")
@click.argument("material", type=click.Choice(["nio", "cr2o3"]))
@click.option(
    "--steps",
    default=None,
    help="Comma-separated strains along c, % (default: the paper's series).",
)
@click.option(
    "--preset", type=click.Choice(sorted(PRESETS)), default=DEFAULT_PRESET, show_default=True
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("distortion"),
    show_default=True,
    help="Folder for table, plot, runs.",
)
def distortion_command(material: str, steps: str | None, preset: str, out: Path) -> None:
    """The paper's Fig. 3: QAMS and SAMS of NiO (0–5 %) or Cr2O3 (−5…+5 %) strained along c."""
    from vtc_fw.app.distortion import distortion_series, series_summary

    strains = None if steps is None else [float(s) for s in steps.split(",")]
    out.mkdir(parents=True, exist_ok=True)
    rows = distortion_series(material, strains, preset, out / "runs", progress=click.echo)
    table = out / f"{material}_{preset}.csv"
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot = out / f"{material}_{preset}.png"
    _plot_series(rows, material, preset, plot)
    summary = series_summary(rows)
    (out / f"{material}_{preset}_summary.json").write_text(json.dumps(summary, indent=1))
    click.echo(
        f"R² of a line vs strain: SAMS {summary['r2_SAMS']:.4f}, QAMS {summary['r2_QAMS']:.4f}; "
        f"minimum at {summary['min_strain_SAMS']:+.1f} % (SAMS), "
        f"{summary['min_strain_QAMS']:+.1f} % (QAMS)"
    )
    click.echo(f"wrote {table} and {plot}")


def _plot_series(rows: list[dict], material: str, preset: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strain = [r["strain_percent"] for r in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    left.plot(strain, [r["SAMS"] for r in rows], "o-", label="SAMS (FEFF10)")
    left.plot(strain, [r["QAMS"] for r in rows], "s--", label="QAMS (n = 5)")
    left.set_xlabel("strain along c (%)")
    left.set_ylabel("anisotropy sum")
    left.legend()
    right.plot([r["QAMS"] for r in rows], [r["SAMS"] for r in rows], "o-")
    right.set_xlabel("QAMS")
    right.set_ylabel("SAMS")
    figure.suptitle(f"{material}, preset {preset}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
