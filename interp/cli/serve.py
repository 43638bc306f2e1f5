"""``iclscope app``: the Streamlit explorer.

The command *becomes* the Streamlit server (``os.execv``) rather than starting it as a child:
a stop signal sent to ``iclscope app`` (Ctrl-C, SIGTERM from a supervisor or a test) then
reaches the server itself, which shuts down, and no server is left serving for a parent that
has gone.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from interp.cli import checks, options
from interp.cli.app import app, console

EXPLORER = Path(__file__).resolve().parent.parent.parent / "app" / "explorer.py"


def streamlit_command(runs: Path, port: int, address: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "app.server",  # Streamlit's command line, with the first page's imports done
        "run",
        str(EXPLORER),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--browser.gatherUsageStats",
        "false",
        "--",
        "--runs",
        str(runs.resolve()),
    ]


@app.command("app")
def app_command(
    runs: Path = typer.Option(Path("runs"), help="Runs folder to browse (must exist)."),
    port: int = typer.Option(8501, min=1, max=options.MAX_PORT, help="Port to serve on."),
    address: str = typer.Option(
        "127.0.0.1", help="Address to listen on (0.0.0.0 serves every network interface)."
    ),
):
    """Start the Streamlit explorer in the browser."""
    checks.runs_folder(runs)
    checks.port_free(address, port)
    console.print(f"iclscope explorer on http://{address}:{port} (runs: {runs})")
    sys.stdout.flush()
    sys.stderr.flush()
    cmd = streamlit_command(runs, port, address)
    os.execv(cmd[0], cmd)  # never returns: this process is now the server
