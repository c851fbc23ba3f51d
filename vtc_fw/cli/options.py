"""Options shared by the ``vtc-fw`` commands: the database configuration and settings defaults."""

from enum import Enum
from pathlib import Path
from typing import Any, get_args

import click

from vtc_fw.db.config import DbConfig
from vtc_fw.errors import VtcError
from vtc_fw.settings import FeatureSet, VtcSettings, get_settings

DB_FILE_HELP = (
    "db.json or my_launchpad.yaml (default: $VTC_FW_DB_FILE, ./db.json, ./my_launchpad.yaml, "
    "the embedded server)."
)
"""DbConfig.load's search order, the help of every ``--db-file`` option."""

FEATURE_SET_HELP = (
    "Inputs of the model: crystal (the paper's 8 with the crystal sums, the best validated) or "
    "paper (the paper's protocol, as docs/REPRODUCTION.md reproduces it)."
)
TARGET_HELP = (
    "What the model predicts: sams (the paper's), sams_max or a_inv (only records with σ)."
)
CHEAP_LABELS_HELP = (
    "Also train on the calibrated labels of this cheap FEFF preset (e.g. screen) of records "
    "without a paper label; tested on paper labels only (default: paper labels only)."
)


def _load_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> DbConfig:
    try:
        return DbConfig.load(value)
    except VtcError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from error


db_config_option = click.option(
    "--db-file",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_load_config,
    help=DB_FILE_HELP,
)
"""``--db-file``: the command receives the loaded :class:`DbConfig` as ``config``."""


def setting(name: str) -> dict[str, Any]:
    """Click option arguments whose default is read from the settings when the command runs.

    ``@click.option("--seed", **setting("seed"), help=...)``: the default, its type and the
    help's ``[default: ...]`` come from :class:`vtc_fw.settings.VtcSettings`. A setting of an
    enum type becomes a choice of its values, and the command receives the value (a string).
    """
    field = VtcSettings.model_fields[name]
    if isinstance(field.annotation, type) and issubclass(field.annotation, Enum):
        return {
            "default": lambda: getattr(get_settings(), name).value,
            "type": click.Choice([member.value for member in field.annotation]),
            "show_default": f"$VTC_FW_{name.upper()} or {field.default.value}",
        }
    kinds = {int, float, str} & set(get_args(field.annotation) or (field.annotation,))
    return {
        "default": lambda: getattr(get_settings(), name),
        "type": kinds.pop() if kinds else None,
        "show_default": f"$VTC_FW_{name.upper()} or {field.default}",
    }


model_feature_set_option = click.option(
    "--feature-set",
    type=click.Choice([member.value for member in FeatureSet]),
    default=None,
    help="Answer with the newest model of this feature set (default: the newest of any).",
)
"""``--feature-set`` of the commands that read predictions: which current model answers."""
