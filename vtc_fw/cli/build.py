"""``vtc-fw build``, ``screen``, ``report`` and ``suggest``: the database side of the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from vtc_fw.app.reporting import latest_model, write_model_report
from vtc_fw.app.screening import SIGMA_QUANTITIES, least_certain, screen, screen_sigma
from vtc_fw.builders import (
    missing_structures_message,
    nightly_builders,
    records_without_structure,
    run_builders,
)
from vtc_fw.builders.train import describe_model
from vtc_fw.builders.train import latest_model as newest_model_in
from vtc_fw.cli.options import (
    CHEAP_LABELS_HELP,
    FEATURE_SET_HELP,
    TARGET_HELP,
    db_config_option,
    model_feature_set_option,
    setting,
)
from vtc_fw.db.config import DbConfig
from vtc_fw.db.lock import holding_build_lock
from vtc_fw.documents.task import TASK_COLLECTION
from vtc_fw.errors import LockHeldError
from vtc_fw.keys import task_key
from vtc_fw.settings import ModelTarget, get_settings


def _connected(config: DbConfig, *names: str) -> list[Any]:
    stores = [
        config.gridfs_store(name) if name == "model_blobs" else config.store(name) for name in names
    ]
    for store in stores:
        store.connect()
    return stores


@click.command("build")
@db_config_option
@click.option("--preset", **setting("preset"), help="FEFF preset of the targets.")
@click.option("--seed", **setting("seed"), help="Seed of the training protocol.")
@click.option("--n-iter", **setting("n_iter"), help="Draws of the randomized search.")
@click.option(
    "--n-jobs",
    **setting("n_jobs"),
    help="Processes (featurizing, training).",
)
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to wait for another running build (default: exit at once, naming it).",
)
@click.option("--feature-set", **setting("feature_set"), help=FEATURE_SET_HELP)
@click.option("--target", **setting("target"), help=TARGET_HELP)
@click.option("--cheap-labels", **setting("cheap_labels"), metavar="PRESET", help=CHEAP_LABELS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print {builder: documents written}.")
def build_command(
    config: DbConfig,
    preset: str,
    seed: int,
    n_iter: int,
    n_jobs: int,
    wait_s: float,
    feature_set: str,
    target: str,
    cheap_labels: str | None,
    as_json: bool,
) -> None:
    """Run the nightly builders: tasks → xes, structures → features, → models → predictions.

    One build at a time per database: a build holds the database's build lock, and a second
    one exits with the holder's name (or waits up to --wait seconds for it to finish).
    """
    builders = nightly_builders(
        config,
        preset=preset,
        seed=seed,
        n_iter=n_iter,
        n_jobs=n_jobs,
        feature_set=feature_set,
        target=target,
        search_space=get_settings().search_space,
        cheap_labels=cheap_labels,
        cheap_preset=get_settings().cheap_preset,
    )
    try:
        with holding_build_lock(config, "vtc-fw build", wait_s=wait_s):
            written = run_builders(builders, show_progress=not as_json, processes=n_jobs)
    except LockHeldError as error:
        raise click.ClickException(
            f"another build is running, not building: {error}; run again when it has finished, "
            "or pass --wait SECONDS"
        ) from error
    _warn_missing_structures(config)
    if as_json:
        click.echo(json.dumps(written))
        return
    for name, count in written.items():
        click.echo(f"{name:<20}{count:>8} documents written")


def _warn_missing_structures(config: DbConfig) -> None:
    """One line on stderr when labelled records cannot be featurized for want of a structure."""
    xes, structures = _connected(config, "xes", "structures")
    missing = records_without_structure(xes, structures)
    if missing:
        click.echo(f"warning: {missing_structures_message(len(missing))}", err=True)


@click.command("screen")
@click.option("--min-sams", type=float, required=True, help="Lowest value of --by (dimensionless).")
@click.option(
    "--by",
    type=click.Choice(["sams", *SIGMA_QUANTITIES]),
    default="sams",
    show_default=True,
    help="sams: FEFF, else the newest model's prediction; sams_max, a_inv: from FEFF's σ.",
)
@click.option("--element", "-e", default=None, help="Only this absorbing element.")
@click.option("--limit", default=20, show_default=True, help="At most this many candidates.")
@click.option("--include-out-of-domain", is_flag=True, help="Also untrustworthy predictions.")
@model_feature_set_option
@db_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the candidates as JSON.")
def screen_command(
    min_sams: float,
    by: str,
    element: str | None,
    limit: int,
    include_out_of_domain: bool,
    feature_set: str | None,
    config: DbConfig,
    as_json: bool,
) -> None:
    """Records whose SAMS (FEFF, else the newest SAMS model's prediction) is at least MIN_SAMS.

    With --by sams_max or a_inv: records whose FEFF σ gives at least that value.
    """
    predictions, xes, models = _connected(config, "predictions", "xes", "models")
    if by == "sams":
        candidates = screen(
            predictions,
            xes,
            models,
            min_sams=min_sams,
            element=element,
            limit=limit,
            in_domain_only=not include_out_of_domain,
            feature_set=feature_set,
        )
    else:
        candidates = screen_sigma(xes, by, minimum=min_sams, element=element, limit=limit)
    if as_json:
        click.echo(json.dumps(candidates, indent=2))
        return
    click.echo(f"{len(candidates)} candidates with {by} >= {min_sams}")
    if by == "sams":
        click.echo(_answered_by(models, feature_set))
    for c in candidates:
        spread = f" ± {c['sams_std']:.3f}" if c.get("sams_std") is not None else ""
        extra = f"  {by} {c[by]:.4f}" if by != "sams" else ""
        click.echo(
            f"{c['record_key']:<40} {c.get('formula') or '':<14} "
            f"SAMS {c['sams']:.4f}{spread}{extra}  ({c['source']})"
        )


@click.command("report")
@click.option(
    "--out", "out_dir", default=Path("report"), show_default=True, type=click.Path(path_type=Path)
)
@click.option("--model-id", default=None, help="A model (default: the newest successful one).")
@model_feature_set_option
@click.option(
    "--target",
    type=click.Choice([member.value for member in ModelTarget]),
    default=None,
    help="The newest model of this target (default: of any).",
)
@db_config_option
def report_command(
    out_dir: Path,
    model_id: str | None,
    feature_set: str | None,
    target: str | None,
    config: DbConfig,
) -> None:
    """Write the model's figures (PNG) and metrics table (markdown) to OUT."""
    model = latest_model(config, model_id, feature_set, target)
    if model is None:
        raise click.ClickException("no trained model in the database (run `vtc-fw build`)")
    click.echo(describe_model(model), err=True)
    for path in write_model_report(config, out_dir, model):
        click.echo(str(path))


@click.command("suggest")
@click.option("--n", "count", type=int, required=True, help="Records to pick.")
@click.option("--element", "-e", default=None, help="Only this absorbing element.")
@click.option("--submit", is_flag=True, help="Add their XES workflows to the LaunchPad.")
@click.option("--preset", **setting("preset"), help="FEFF preset when submitting.")
@model_feature_set_option
@db_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the picks as JSON.")
def suggest_command(
    count: int,
    element: str | None,
    submit: bool,
    preset: str,
    feature_set: str | None,
    config: DbConfig,
    as_json: bool,
) -> None:
    """Pick the unlabelled records the model is least certain about (largest tree spread)."""
    predictions, xes, models = _connected(config, "predictions", "xes", "models")
    picks = least_certain(
        predictions, xes, models, n=count, element=element, feature_set=feature_set
    )
    if submit:
        for pick, fw_id in zip(picks, _submit(config, picks, preset), strict=True):
            pick["submitted_fw_id"] = fw_id
    if as_json:
        click.echo(json.dumps(picks, indent=2))
        return
    click.echo(_answered_by(models, feature_set))
    for pick in picks:
        submitted = _submitted(pick["submitted_fw_id"]) if submit else ""
        click.echo(
            f"{pick['record_key']:<40} SAMS {pick['sams']:.4f} ± {pick['sams_std']:.4f}{submitted}"
        )


def _answered_by(models: Any, feature_set: str | None) -> str:
    """The line that names the model whose predictions a screen shows."""
    model = newest_model_in(models, feature_set, ModelTarget.SAMS)
    if model is None:
        return "no SAMS model: FEFF values only"
    return f"predictions of {describe_model(model)}"


def _submitted(fw_id: int | None) -> str:
    return "  already queued or computed" if fw_id is None else f"  submitted fw {fw_id}"


def _submit(config: DbConfig, picks: list[dict[str, Any]], preset: str) -> list[int | None]:
    """Add one XES workflow per pick not queued yet; returns the new Firework ids (None: queued)."""
    from vtc_fw.workflow.maker import XesWorkflowMaker  # FireWorks machinery only when submitting
    from vtc_fw.workflow.submission import add_new_workflows

    (structures,) = _connected(config, "structures")
    records = []
    for pick in picks:
        document = structures.query_one({"structure_id": pick["structure_id"]})
        if document is None or not document.get("structure"):
            raise click.ClickException(f"structure {pick['structure_id']} is not in the database")
        records.append((document["structure"], pick["structure_id"], pick["element"]))
    client = config.client()
    try:
        tasks = config.collection(TASK_COLLECTION, client)
        added = add_new_workflows(records, tasks, config.launchpad(), XesWorkflowMaker(preset))
    finally:
        client.close()
    return [added[task_key(pick["record_key"], preset)] for pick in picks]
