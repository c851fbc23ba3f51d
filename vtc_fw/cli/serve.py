"""``vtc-fw serve``: the screening pages and the REST API over the configured database."""

from __future__ import annotations

import click

from vtc_fw.cli.options import db_config_option
from vtc_fw.db.config import DbConfig

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, help="TCP port.")
@click.option(
    "--public",
    is_flag=True,
    help="Allow a --host other than the loopback (anyone who reaches it can read the data).",
)
@db_config_option
@click.option("--log-level", default="warning", show_default=True, help="uvicorn's log level.")
def serve_command(host: str, port: int, public: bool, config: DbConfig, log_level: str) -> None:
    """Serve the candidates, record and model pages and the read-only REST API (/api/docs)."""
    if host not in LOOPBACK and not public:
        raise click.UsageError(
            f"--host {host} would expose the database beyond this machine; add --public to mean it"
        )
    import uvicorn  # the web stack only for this command

    from vtc_fw.api import create_app

    app = create_app(config)  # an embedded server that will not start: the CLI's one-line error
    if host not in LOOPBACK:
        click.echo(
            f"WARNING: serving on {host}:{port}: anyone who can reach this address can read "
            "the whole database (read-only, no authentication).",
            err=True,
        )
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"vtc-fw serve: http://{shown}:{port}/ (API reference: /api/docs); Ctrl-C stops")
    uvicorn.run(app, host=host, port=port, log_level=log_level)
