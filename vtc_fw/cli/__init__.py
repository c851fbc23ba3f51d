"""The ``vtc-fw`` command line: one click group, one module per command family."""

import importlib

import click

from vtc_fw import __version__

# Each module registers its commands on ``main`` when imported (features, feff, db, build...).
_COMMAND_MODULES = ("features", "feff", "db", "build", "run", "serve")

# DbConfig.load's search order, shared by every ``--db-file`` option.
DB_FILE_HELP = (
    "db.json or my_launchpad.yaml (default: $VTC_FW_DB_FILE, ./db.json, ./my_launchpad.yaml, "
    "the embedded server)."
)


@click.group()
@click.version_option(__version__, prog_name="vtc-fw")
def main() -> None:
    """Predict the polarization anisotropy (SAMS) of valence-to-core XES from crystal structures."""


for _name in _COMMAND_MODULES:
    importlib.import_module(f"vtc_fw.cli.{_name}")
