"""``vtc-fw run``: the main job (see :mod:`vtc_fw.app.main_job`)."""

import json
from pathlib import Path

import click

from vtc_fw.app.main_job import MainJobSettings, run_main_job
from vtc_fw.app.sampling import RECORD_TIMEOUT_S, SAMPLES
from vtc_fw.cli.options import (
    CHEAP_LABELS_HELP,
    FEATURE_SET_HELP,
    TARGET_HELP,
    db_config_option,
    setting,
)
from vtc_fw.db.config import DbConfig


@click.command("run")
@click.option("--n", "n_new", default=2, show_default=True, help="New structures to run FEFF on.")
@click.option(
    "--sample",
    type=click.Choice(SAMPLES),
    default="quick",
    show_default=True,
    help="quick: one FEFF site per new structure (~10 min run); broad: the reference population.",
)
@click.option("--workers", default=2, show_default=True, help="Local rlaunch workers.")
@click.option("--preset", **setting("preset"), help="FEFF preset.")
@click.option(
    "--timeout",
    "timeout_s",
    **setting("record_timeout_s"),
    help="Wall-clock limit of one new FEFF record, s (0: none; default: "
    + ", ".join(f"{sample} {limit:g}" for sample, limit in RECORD_TIMEOUT_S.items())
    + "). A record over it is stored as failed (reason timeout) and the run goes on.",
)
@click.option("--seed", **setting("seed"), help="Seed of the sample and the model.")
@click.option("--n-iter", **setting("n_iter"), help="Randomized-search draws.")
@click.option("--feature-set", **setting("feature_set"), help=FEATURE_SET_HELP)
@click.option("--target", **setting("target"), help=TARGET_HELP)
@click.option("--cheap-labels", **setting("cheap_labels"), metavar="PRESET", help=CHEAP_LABELS_HELP)
@click.option(
    "--structures",
    type=int,
    default=None,
    help="Store and predict for only the first N OQMD-ICSD structures (default: all).",
)
@click.option(
    "--reference-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Task documents (*.jsonl.gz) to import first (default: the checkout's data/).",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Worker, scratch and report directory (default: $VTC_FW_HOME/run).",
)
@db_config_option
@click.option("--json", "as_json", is_flag=True, help="Also print the summary as JSON.")
def run_command(
    n_new: int,
    sample: str,
    workers: int,
    preset: str,
    timeout_s: float | None,
    seed: int,
    n_iter: int,
    feature_set: str,
    target: str,
    cheap_labels: str | None,
    structures: int | None,
    reference_dir: Path | None,
    run_dir: Path | None,
    config: DbConfig,
    as_json: bool,
) -> None:
    """Compute, train, predict and report on the configured (default: embedded) database.

    Resumable: run it again after Ctrl-C and finished FEFF work is kept.
    """
    settings = MainJobSettings(
        n_new=n_new,
        sample=sample,
        workers=workers,
        preset=preset,
        timeout_s=timeout_s,
        seed=seed,
        n_iter=n_iter,
        feature_set=feature_set,
        target=target,
        cheap_labels=cheap_labels,
        structures=structures,
    )
    if run_dir is not None:
        settings.run_dir = run_dir
    if reference_dir is not None:
        settings.reference_dir = reference_dir
    try:
        summary = run_main_job(config, settings, echo=click.echo)
    except KeyboardInterrupt as interrupt:
        raise SystemExit(130) from interrupt
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
