"""``kdsl serve``: the rule writer's workbench in the browser (kdsl.workbench does the work)."""

import click

from kdsl.cli.common import main
from kdsl.errors import DependencyError


@main.command()
@click.argument("data", metavar="DATA.parquet", type=click.Path())
@click.option("-r", "--rules", "rules_dir", required=True, type=click.Path(),
              help="The directory of .kdsl files to edit (only these files are ever written).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback exposes the rule files to the network.")
def serve(data, rules_dir, port, host):
    """Serve the workbench page: edit rules with the checker's diagnostics as you type, see each
    edit's hits, precision, fixes, breaks and conflicts on DATA, save formatted files."""
    try:
        from kdsl.workbench.app import serve as run
        from kdsl.workbench.session import Session
    except ImportError as error:
        raise DependencyError(f"the workbench needs the 'serve' extra (pip install 'kdsl[serve]'): {error}") from None

    session = Session(data, rules_dir)
    click.echo(f"kdsl workbench: http://{host}:{port}/  ({session.table.num_rows} rows, "
               f"{len(session.files)} rule file(s)); Ctrl-C stops", err=True)
    run(session, host=host, port=port)
