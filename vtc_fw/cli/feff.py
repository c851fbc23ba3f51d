"""``vtc-fw sams`` (one record with FEFF10, no database) and ``vtc-fw distortion`` (Fig. 3)."""

import csv
import json
import tempfile
from pathlib import Path

import click
import numpy as np

from vtc_fw.errors import VtcError
from vtc_fw.feff.inputs import PRESETS
from vtc_fw.settings import DEFAULT_PRESET


@click.command("sams")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON (keys SAMS, SAM, cpu_s, stages).")
def sams_command(
    path: Path,
    element: str,
    preset: str,
    route: str,
    workdir: Path | None,
    timeout_s: float | None,
    as_json: bool,
) -> None:
    """Compute SAMS of one structure file (CIF, POSCAR...) for absorber ELEMENT with FEFF10."""
    from pymatgen.core import Structure

    from vtc_fw.feff.engine import compute_record_spectra
    from vtc_fw.science.records import make_records

    try:
        structure = Structure.from_file(path)
        record = make_records(structure, structure_id=path.stem, elements=[element])[0]
        with tempfile.TemporaryDirectory(prefix="vtc-fw-sams-") as scratch:
            root = workdir or Path(scratch)
            spectra = compute_record_spectra(
                record, preset, root / path.stem, timeout_s=timeout_s, route=route
            )
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
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{spectra.record_key}  preset {preset}  route {spectra.route}")
    click.echo(f"SAMS  {spectra.sams:.5f}")
    click.echo("SAM\n" + np.array2string(spectra.sam, precision=5, suppress_small=True))
    click.echo(f"CPU {spectra.cpu_s:.1f} s, wall {spectra.wall_s:.1f} s; per stage (wall s):")
    for stage, seconds in spectra.stages.items():
        click.echo(f"  {stage:<8} {seconds:8.2f}")


def _fail(error: Exception, as_json: bool) -> None:
    reason = getattr(error, "reason", type(error).__name__)
    if as_json:
        click.echo(json.dumps({"error": str(error), "reason": reason}))
        raise SystemExit(1)
    raise click.ClickException(f"{error} [{reason}]")


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
