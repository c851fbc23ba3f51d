"""``vtc-fw features`` and ``vtc-fw table``: featurize structures locally, no database."""

import json
from pathlib import Path

import click
from pymatgen.core import Structure

from vtc_fw.errors import StructureError, VtcError
from vtc_fw.science.features import DEFAULT_FEATURE_EXPONENT, FEATURE_COLUMNS, featurize_record
from vtc_fw.science.records import Record, absorber_elements, make_records
from vtc_fw.sources import SAMPLE_DIR
from vtc_fw.sources.files import iter_paths
from vtc_fw.sources.readers import read_structure_file, shown_path

JSON_KEYS = (*FEATURE_COLUMNS, "in_domain", "basis")
"""Keys of ``vtc-fw features --json`` (the public interface)."""


def read_structure(path: Path) -> Structure:
    """The (first) structure of a CIF, POSCAR or pymatgen-JSON file.

    Raises:
        StructureError: The file is missing or unreadable; one line naming the file and why.
    """
    try:
        structures, _ = read_structure_file(path)
    except StructureError as error:
        raise StructureError(f"{shown_path(path)}: {error}", error.reason) from error
    return structures[0]


def record_of_file(path: Path, element: str, structure_id: str) -> Record:
    """The record of absorber ``element`` in the structure file ``path``.

    Raises:
        UsageError: ``element`` is not a 3d transition metal (checked before reading).
        StructureError: The file or its structure cannot be used; the message names the file.
    """
    absorber_elements([element])
    structure = read_structure(path)
    try:
        (record,) = make_records(structure, shown_path(structure_id), elements=[element])
    except StructureError as error:
        raise StructureError(f"{shown_path(path)}: {error}", error.reason) from error
    return record


@click.command("features")
@click.argument("path", type=click.Path(path_type=Path))
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
    record = record_of_file(path, element, f"file:{path.stem}")
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
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--exponent", "-n", default=DEFAULT_FEATURE_EXPONENT, show_default=True, type=int)
def table_command(paths: tuple[Path, ...], exponent: int) -> None:
    """Featurize structure files (default: the bundled sample) and print one row per record.

    PATHS are structure files or directories of them. A structure that cannot be used gets one
    line on stderr with the reason; the others still run, and the exit code is then 1.
    """
    click.echo(f"{'record':<40}{'formula':<14}" + "".join(f"{c:>10}" for c in FEATURE_COLUMNS))
    skipped = 0
    for entry in iter_paths(paths or (SAMPLE_DIR,)):
        try:
            rows = [featurize_record(r, exponent) for r in make_records(entry)]
        except VtcError as exc:
            click.echo(f"skipped {exc} [{exc.reason}]", err=True)
            skipped += 1
            continue
        for row in rows:
            cells = "".join(f"{_format(getattr(row, c)):>10}" for c in FEATURE_COLUMNS)
            flag = "" if row.in_domain else "  (out of domain)"
            click.echo(f"{row.record_key:<40}{row.formula:<14}{cells}{flag}")
    if skipped:
        raise click.ClickException(f"{skipped} structures could not be used (listed above)")


def _format(value: float | None) -> str:
    """A feature value for a table: 4 significant digits, or 'null'."""
    return "null" if value is None else f"{value:.4g}"
