"""``pyfaas usage``: what functions used and cost, from the server's usage records."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from pyfaas.cli.client import ApiClient, CliError
from pyfaas.cli.common import TokenOpt, UrlOpt, err, out

FORMATS = ("table", "json", "csv")


def usage(
    since: Annotated[
        str | None,
        typer.Option(
            help="Start: 2026-11-01, 2026-11-25T10:00Z, or back from now: 24h, 7d [default 30d]"
        ),
    ] = None,
    until: Annotated[str | None, typer.Option(help="End (exclusive) [default now]")] = None,
    by: Annotated[
        str, typer.Option("--by", help="Group by: function, version, day, hour (comma-separated)")
    ] = "function",
    function: Annotated[str | None, typer.Option("--function", "-f")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Show usage and cost (GB-seconds, requests) by function, version, day or hour."""
    if fmt not in FORMATS:
        raise CliError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    params: dict[str, Any] = {"group_by": by, "format": "csv" if fmt == "csv" else "json"}
    for key, value in (("start", since), ("end", until), ("function", function)):
        if value is not None:
            params[key] = value
    response = ApiClient(url, token).request("GET", "/v1/usage", params=params)
    if fmt == "csv":
        sys.stdout.write(response.text)
        return
    report = response.json()
    if fmt == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    _print_table(report)


def _print_table(report: dict[str, Any]) -> None:
    groups = report["group_by"]
    table = Table(
        *groups,
        "invocations",
        "errors",
        "billed",
        "cpu",
        "GB-s",
        "cost",
        title=f"Usage {report['start']} - {report['end']}",
    )
    for row in report["rows"]:
        failed = row["errors"] + row["timeouts"] + row["crashes"]
        table.add_row(
            *(str(row[g]) for g in groups),
            f"{row['invocations']:,}",
            f"{failed:,}",
            f"{row['billed_ms']:,} ms",
            f"{row['cpu_ms']:,.1f} ms",
            row["gb_seconds"],
            f"{row['cost']} {row['currency']}",
        )
    if not report["rows"]:
        out.print("No usage in this range.")
        return
    out.print(table)
    for total in report["totals"]:
        err.print(
            f"Total: {total['invocations']:,} invocations, {total['billed_ms']:,} ms billed, "
            f"{total['cost']} {total['currency']}"
        )
