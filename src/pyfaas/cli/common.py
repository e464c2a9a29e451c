"""What every command shares: consoles, the --url/--token options, time formatting."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console

# Off a terminal (pipes, scripts) Rich would wrap at 80 columns; lines are kept whole instead.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)

UrlOpt = Annotated[
    str | None, typer.Option("--url", help="Server URL [env: PYFAAS_URL; default 127.0.0.1:8080]")
]
TokenOpt = Annotated[str | None, typer.Option("--token", help="API token [env: PYFAAS_TOKEN]")]


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
