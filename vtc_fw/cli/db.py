"""``vtc-fw db start|stop|status``, ``vtc-fw submit``, ``vtc-fw export``, ``vtc-fw import``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from vtc_fw.app.transfer import export_tasks, fill_missing_structures, import_tasks
from vtc_fw.cli.options import db_config_option, setting
from vtc_fw.db.config import DbConfig
from vtc_fw.progress import progress_bar
from vtc_fw.science.records import absorber_elements
from vtc_fw.workflow.maker import XesWorkflowMaker
from vtc_fw.workflow.submission import (
    SOURCES,
    open_source,
    resubmit_without_sigma,
    submit_entries,
)


@click.group("db")
def db_group() -> None:
    """The embedded database server (secantusd-py, a MongoDB-protocol server)."""


@db_group.command("start")
@db_config_option
def db_start(config: DbConfig) -> None:
    """Start the embedded server of the configured local default address."""
    if not config.is_local_default:
        raise click.ClickException(
            f"the configured server ({config.uri or f'{config.host}:{config.port}'}) is not the "
            "embedded default; vtc-fw starts only its own local server (for a second one on "
            'this machine, give the db file an "embedded_home" directory)'
        )
    status = config.embedded_server().ensure_running()
    who = f"pid {status.pid}" if status.running else "a server not started by vtc-fw"
    click.echo(f"database answering at {status.host}:{status.port} ({who}), data {status.data_dir}")


@db_group.command("stop")
@db_config_option
def db_stop(config: DbConfig) -> None:
    """Stop the embedded server started by vtc-fw."""
    server = config.embedded_server()
    stopped = server.stop()
    click.echo(
        f"stopped the server at {server.host}:{server.port}" if stopped else "no server running"
    )


@db_group.command("status")
@db_config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def db_status(config: DbConfig, as_json: bool) -> None:
    """Say whether the configured database answers, and what vtc-fw started."""
    status = config.embedded_server().status()
    if as_json:
        click.echo(json.dumps({**status.as_dict(), "database": config.database}, indent=2))
        return
    target = config.uri or f"{config.host}:{config.port}"
    click.echo(f"configured: {target}, database {config.database}")
    click.echo(f"answering:  {status.answering}")
    if status.running:
        click.echo(f"embedded:   pid {status.pid}, data {status.data_dir}, log {status.log_file}")


@click.command("submit")
@click.option("--source", type=click.Choice(SOURCES), required=True, help="Structure source.")
@click.option("--path", help="CIF directory (cif-dir) or ASE database file (ase-db).")
@click.option("--preset", **setting("preset"), help="FEFF preset.")
@click.option("--limit", type=int, help="At most this many structures.")
@click.option("--elements", help="Comma-separated 3d elements, e.g. Fe,Co (records and filter).")
@click.option("--seed", type=int, help="With --limit: a seeded, element-balanced sample.")
@click.option("--category", help="FireWorks _category of the new Fireworks.")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    help="Wall-clock limit of one record, s; a record over it is stored as failed (reason "
    "timeout). Default: none (the queue's walltime applies).",
)
@db_config_option
def submit_command(
    source: str,
    path: str | None,
    preset: str,
    limit: int | None,
    elements: str | None,
    seed: int | None,
    category: str | None,
    timeout_s: float | None,
    config: DbConfig,
) -> None:
    """Store structures from a source and add one XES workflow per new record.

    A structure that cannot be read or used gets one line on stderr with the reason and no
    workflow; the others are submitted, and the exit code is then 1.
    """
    from vtc_fw.feff import PRESETS

    if preset not in PRESETS:
        raise click.ClickException(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    chosen = _elements_option(elements)
    entries = open_source(source, path=path, limit=limit, elements=chosen, seed=seed)
    with progress_bar(total=limit, unit="structure", desc="submit") as bar:
        report = submit_entries(
            entries,
            config,
            XesWorkflowMaker(preset=preset, category=category, timeout_s=timeout_s),
            elements=chosen,
            progress=bar.update,
        )
    for structure_id, error in report.unreadable:
        click.echo(f"unreadable {structure_id}: {error}", err=True)
    for structure_id, error in report.unusable:
        click.echo(f"unusable {structure_id}: {error}", err=True)
    click.echo(report.summary())
    if report.unreadable or report.unusable:
        raise click.ClickException(
            f"{len(report.unreadable) + len(report.unusable)} structures got no workflow "
            "(listed above)"
        )


def _elements_option(text: str | None) -> list[str] | None:
    """``--elements Fe,Co``: the absorbers, each checked to be a 3d metal; None for all."""
    if text is None:
        return None
    return absorber_elements([symbol.strip() for symbol in text.split(",")])


@click.command("backfill-sigma")
@click.option("--preset", **setting("preset"), help="Preset of the tasks to recompute.")
@click.option("--elements", help="Comma-separated absorbers, e.g. Fe,Co (default: all).")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many records.")
@db_config_option
def backfill_sigma_command(
    preset: str, elements: str | None, limit: int | None, config: DbConfig
) -> None:
    """Queue again the successful tasks without σ so that they gain it (six polarizations)."""
    chosen = _elements_option(elements)
    added = resubmit_without_sigma(config, XesWorkflowMaker(preset=preset), chosen, limit)
    queued = sum(fw_id is not None for fw_id in added.values())
    click.echo(
        f"{queued} records queued for σ, {len(added) - queued} already pending or without a "
        f"stored structure ({len(added)} {preset} tasks without σ considered)"
    )


@click.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--query", default="{}", help='MongoDB filter on tasks, e.g. \'{"preset": "paper"}\'.'
)
@db_config_option
def export_command(path: Path, query: str, config: DbConfig) -> None:
    """Write task documents, each with its structure, to PATH (.jsonl.gz)."""
    try:
        criteria = json.loads(query)
    except ValueError as error:
        raise click.ClickException(f"--query is not JSON: {error}") from error
    with progress_bar(unit="task", desc="export") as bar:
        counts = export_tasks(config, path, criteria, progress=bar.update)
    click.echo(
        f"exported {counts['tasks']} task documents and {counts['structures']} structures to {path}"
    )
    if counts["without_structure"]:
        click.echo(
            f"warning: {counts['without_structure']} tasks have no structure in this database; "
            "an import fills OQMD-ICSD and AMCSD ones from the shipped sources, not others",
            err=True,
        )


@click.command("import")
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--replace",
    is_flag=True,
    help="Let the file's successful tasks replace successful tasks of the same key.",
)
@db_config_option
def import_command(paths: tuple[Path, ...], replace: bool, config: DbConfig) -> None:
    """Insert the task documents and structures of each PATH (.jsonl.gz), all or nothing per file.

    Importing twice adds nothing; a successful task already in the database is kept unless
    --replace is given, and so is a stored structure. Then structures that tasks refer to but
    the database lacks are filled from the shipped OQMD-ICSD and AMCSD sources.
    """
    for path in paths:
        with progress_bar(unit="task", desc="import") as bar:
            counts = import_tasks(config, path, progress=bar.update, replace=replace)
        click.echo(
            f"{path}: " + ", ".join(f"{count} {outcome}" for outcome, count in counts.items())
        )
    structures = fill_missing_structures(config)
    click.echo(
        f"structures: {structures['filled']} filled from the shipped sources, "
        f"{structures['missing']} still missing"
    )
    if structures["missing"]:
        click.echo(
            f"warning: {structures['missing']} structures of imported tasks are in neither the "
            "files nor the shipped sources: their records get no features (import an export "
            "made with structures)",
            err=True,
        )
