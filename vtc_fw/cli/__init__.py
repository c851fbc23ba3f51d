"""The ``vtc-fw`` command line: one click group, one module per command family.

Commands are registered explicitly below. One error policy for all of them: a vtc-fw error
(bad input, bad configuration, FEFF failure), an unreachable database or an unreadable file is
one line on stderr and exit code 1, never a traceback. Library warnings (pymatgen's CIF parser,
spglib, scikit-learn) are not printed: what matters of them is in vtc-fw's own messages
(``PYTHONWARNINGS=default`` shows them again).
"""

import sys
import warnings
from typing import Any

import click
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from vtc_fw import __version__
from vtc_fw.cli import build, db, features, feff, predict, run, serve
from vtc_fw.errors import VtcError
from vtc_fw.settings import invalid_settings_line


class VtcGroup(click.Group):
    """A click group that turns expected failures into one-line errors."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; vtc-fw, database and file errors become ``click.ClickException``."""
        with warnings.catch_warnings():
            if not sys.warnoptions:
                warnings.simplefilter("ignore")
            return self._invoke(ctx)

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VtcError as error:
            raise click.ClickException(f"{error} [{error.reason}]") from error
        except PyMongoError as error:
            raise click.ClickException(f"database error: {_first_line(error)}") from error
        except OSError as error:
            raise click.ClickException(str(error)) from error
        except ValidationError as error:
            line = invalid_settings_line(error)
            if line is None:
                raise
            raise click.ClickException(line) from error


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


@click.group(cls=VtcGroup)
@click.version_option(__version__, prog_name="vtc-fw")
def main() -> None:
    """Predict the polarization anisotropy (SAMS) of valence-to-core XES from crystal structures."""


COMMANDS: tuple[click.Command, ...] = (
    features.features_command,
    features.table_command,
    feff.sams_command,
    feff.spectra_command,
    feff.distortion_command,
    db.db_group,
    db.submit_command,
    db.backfill_sigma_command,
    db.export_command,
    db.import_command,
    build.build_command,
    build.screen_command,
    build.report_command,
    build.suggest_command,
    predict.predict_command,
    run.run_command,
    serve.serve_command,
)
"""Every ``vtc-fw`` command, in the order ``vtc-fw --help`` lists them."""

for _command in COMMANDS:
    main.add_command(_command)
