"""Options shared by the ``vtc-fw`` commands: the database configuration and settings defaults."""

from pathlib import Path
from typing import Any, get_args

import click

from vtc_fw.db.config import DbConfig
from vtc_fw.errors import VtcError
from vtc_fw.settings import VtcSettings, get_settings

DB_FILE_HELP = (
    "db.json or my_launchpad.yaml (default: $VTC_FW_DB_FILE, ./db.json, ./my_launchpad.yaml, "
    "the embedded server)."
)
"""DbConfig.load's search order, the help of every ``--db-file`` option."""


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
    help's ``[default: ...]`` come from :class:`vtc_fw.settings.VtcSettings`.
    """
    field = VtcSettings.model_fields[name]
    kinds = {int, float, str} & set(get_args(field.annotation) or (field.annotation,))
    return {
        "default": lambda: getattr(get_settings(), name),
        "type": kinds.pop() if kinds else None,
        "show_default": f"$VTC_FW_{name.upper()} or {field.default}",
    }
