"""``pyfaas doctor``: what isolation the server enforces on its workers, and what not."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from pyfaas.cli.client import ApiClient, CliError
from pyfaas.cli.common import TokenOpt, UrlOpt, err, out

# The isolation settings of `deploy` and `config`.
EphemeralStorageOpt = Annotated[
    int | None, typer.Option(help="Size of the writable /tmp in MB (512-10240)")
]
NetworkOpt = Annotated[
    str | None, typer.Option(help="host, or none: no network at all (needs the sandbox)")
]
GpusOpt = Annotated[int | None, typer.Option(help="GPUs per worker, 0-8 (needs the Ray executor)")]


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Show which isolation mechanisms (sandbox, namespaces, cgroups, rlimits) the server
    enforces on this machine; exit status 2 if any is missing."""
    report = ApiClient(url, token).json("GET", "/v1/isolation")
    mechanisms = report["mechanisms"]
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        table = Table("", "mechanism", "detail", box=None, pad_edge=False)
        for m in mechanisms:
            mark = Text("✓", style="green") if m["enforced"] else Text("✗", style="bold red")
            table.add_row(mark, m["name"], m["detail"])
        out.print(table)
    missing = [m["name"] for m in mechanisms if not m["enforced"]]
    mode = f"sandbox = {report['sandbox_mode']}"
    if missing:
        raise CliError(f"not enforced ({mode}): " + ", ".join(missing), exit_code=2)
    if not as_json:
        err.print(f"[green]every mechanism is enforced[/green] ({mode})")
