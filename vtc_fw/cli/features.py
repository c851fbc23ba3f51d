"""``vtc-fw features`` and ``vtc-fw table``: featurize structures locally, no database."""

import json
from pathlib import Path

import click
from pymatgen.core import Structure

from vtc_fw.errors import VtcError
from vtc_fw.science.features import DEFAULT_FEATURE_EXPONENT, FEATURE_COLUMNS, featurize_record
from vtc_fw.science.records import make_records
from vtc_fw.sources import SAMPLE_DIR, iter_directory

JSON_KEYS = (*FEATURE_COLUMNS, "in_domain", "basis")
"""Keys of ``vtc-fw features --json`` (the public interface)."""


def read_structure(path: Path) -> Structure:
    """Read a CIF, POSCAR or pymatgen-JSON file, with a clear error when it cannot be parsed."""
    try:
        if path.suffix.lower() == ".json":
            return Structure.from_dict(json.loads(path.read_text()))
        return Structure.from_file(path)
    except Exception as exc:  # pymatgen raises many types for malformed files
        raise click.ClickException(f"cannot read a structure from {path}: {exc}") from exc


@click.command("features")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--element", "-e", required=True, help="Absorbing 3d element, e.g. Fe.")
@click.option(
    "--exponent",
    "-n",
    default=DEFAULT_FEATURE_EXPONENT,
    show_default=True,
    type=int,
    help="Feature weight exponent n of 1/r^n.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def features_command(path: Path, element: str, exponent: int, as_json: bool) -> None:
    """Print the features of one (structure, element) record read from PATH."""
    structure = read_structure(path)
    try:
        (record,) = make_records(structure, structure_id=f"file:{path.stem}", elements=[element])
    except VtcError as exc:
        raise click.ClickException(f"{path}: {exc}") from exc
    row = featurize_record(record, exponent)
    values = {key: getattr(row, key) for key in JSON_KEYS}
    if as_json:
        click.echo(json.dumps(values, indent=2))
        return
    click.echo(f"{row.record_key}  {row.formula}  SG {row.spacegroup}  n = {exponent}")
    for key in FEATURE_COLUMNS:
        click.echo(f"  {key:<16}{_format(values[key])}")
    click.echo(f"  {'in_domain':<16}{row.in_domain}  {'; '.join(row.domain_notes)}")


@click.command("table")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--exponent", "-n", default=DEFAULT_FEATURE_EXPONENT, show_default=True, type=int)
def table_command(paths: tuple[Path, ...], exponent: int) -> None:
    """Featurize structure files (default: the bundled sample) and print one row per record.

    Files that cannot be used are listed with the reason; the others still run.
    """
    directories = paths or (SAMPLE_DIR,)
    click.echo(f"{'record':<40}{'formula':<14}" + "".join(f"{c:>10}" for c in FEATURE_COLUMNS))
    for directory in directories:
        for entry in iter_directory(directory):
            try:
                rows = [featurize_record(r, exponent) for r in make_records(entry)]
            except VtcError as exc:
                click.echo(f"{entry.structure_id:<40}skipped ({exc.reason}): {exc}")
                continue
            for row in rows:
                cells = "".join(f"{_format(getattr(row, c)):>10}" for c in FEATURE_COLUMNS)
                flag = "" if row.in_domain else "  (out of domain)"
                click.echo(f"{row.record_key:<40}{row.formula:<14}{cells}{flag}")


def _format(value: float | None) -> str:
    """A feature value for a table: 4 significant digits, or 'null'."""
    return "null" if value is None else f"{value:.4g}"
