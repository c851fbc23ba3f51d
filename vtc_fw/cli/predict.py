"""``vtc-fw predict``: one structure's SAMS at the fidelity the user can afford."""

import json
from pathlib import Path

import click

from vtc_fw.cli.features import read_structure
from vtc_fw.cli.options import db_config_option, model_feature_set_option
from vtc_fw.db.config import DbConfig
from vtc_fw.errors import VtcError


@click.command("predict")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--element", "-e", required=True, help="Absorbing 3d element, e.g. Ni.")
@click.option(
    "--fidelity",
    type=click.Choice(["features", "cheap", "paper"]),
    default="features",
    show_default=True,
    help="features: the current model (milliseconds); cheap: the cheap FEFF preset "
    "(VTC_FW_CHEAP_PRESET, default screen_scf) + its calibration (seconds to a minute); "
    "paper: FEFF preset paper (minutes).",
)
@model_feature_set_option
@click.option("--timeout", "timeout_s", type=float, default=None, help="FEFF wall-clock limit, s.")
@db_config_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON (keys record_key, fidelity, sams, uncertainty, uncertainty_kind, "
    "produced_by, and cpu_s for FEFF).",
)
def predict_command(
    path: Path,
    element: str,
    fidelity: str,
    feature_set: str | None,
    timeout_s: float | None,
    config: DbConfig,
    as_json: bool,
) -> None:
    """Predict SAMS of the structure in PATH for absorber ELEMENT, with its uncertainty."""
    from vtc_fw.app.tiered_prediction import Fidelity, predict
    from vtc_fw.science.records import make_records
    from vtc_fw.settings import FeatureSet

    structure = read_structure(path)
    try:
        (record,) = make_records(structure, structure_id=f"file:{path.stem}", elements=[element])
    except VtcError as error:
        raise click.ClickException(f"{path}: {error}") from error
    answer = predict(
        None if fidelity == "paper" else config,
        record,
        Fidelity(fidelity),
        feature_set=None if feature_set is None else FeatureSet(feature_set),
        timeout_s=timeout_s,
    )
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    spread = "" if answer["uncertainty"] is None else f" ± {answer['uncertainty']:.4f}"
    click.echo(f"{answer['record_key']}  SAMS {answer['sams']:.4f}{spread}  ({fidelity})")
    click.echo(f"  by {answer['produced_by']}; uncertainty: {answer['uncertainty_kind']}")
