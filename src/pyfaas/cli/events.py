"""Commands about asynchronous invocations: their status and the dead-letter queue."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from pyfaas.cli.client import ApiClient, CliError
from pyfaas.cli.common import TokenOpt, UrlOpt, err, out, when


def invocation_status(
    request_id: Annotated[str, typer.Argument(help="Request id printed by invoke --async")],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Show where an asynchronous invocation stands (queued, running, succeeded, failed, dead)."""
    info = ApiClient(url, token).json("GET", f"/v1/invocations/{request_id}")
    sys.stdout.write(json.dumps(info, indent=2) + "\n")


dlq = typer.Typer(help="The dead-letter queue of asynchronous invocations.", no_args_is_help=True)


@dlq.command("ls")
def dlq_list(
    function: Annotated[str | None, typer.Option("--function", "-f")] = None,
    limit: Annotated[int, typer.Option()] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """List dead events, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if function:
        params["function"] = function
    events = ApiClient(url, token).json("GET", "/v1/dlq", params=params)["events"]
    if as_json:
        sys.stdout.write(json.dumps(events, indent=2) + "\n")
        return
    table = Table("request id", "function", "condition", "attempts", "last error", "since")
    for e in events:
        table.add_row(
            e["request_id"],
            e["function"],
            e["condition"] or "-",
            str(e["attempts"]),
            _error_summary(e["last_error"]),
            when(e["updated_at"]),
        )
    out.print(table if events else "The dead-letter queue is empty.")


@dlq.command("show")
def dlq_show(
    request_id: Annotated[str, typer.Argument()],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Show a dead event with its payload and last error."""
    info = ApiClient(url, token).json("GET", f"/v1/dlq/{request_id}")
    sys.stdout.write(json.dumps(info, indent=2) + "\n")


@dlq.command("redrive")
def dlq_redrive(
    request_ids: Annotated[
        list[str] | None, typer.Argument(help="Dead events to queue again")
    ] = None,
    function: Annotated[
        str | None, typer.Option("--function", "-f", help="Every dead event of this function")
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every dead event")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Queue dead events again, with fresh retries and age."""
    body: dict[str, Any] = {}
    if request_ids:
        body["request_ids"] = request_ids
    if function:
        body["function"] = function
    if not body and not everything:
        raise CliError("name request ids, --function NAME, or --all")
    if everything:
        body["all"] = True
    moved = ApiClient(url, token).json("POST", "/v1/dlq/redrive", json=body)["redriven"]
    err.print(f"[green]✓[/green] Queued {len(moved)} event(s) again")
    for request_id in moved:
        sys.stdout.write(request_id + "\n")


def _error_summary(last_error: str | None) -> str:
    if not last_error:
        return "-"
    try:
        error = json.loads(last_error)
        return f"{error.get('errorType', '?')}: {error.get('errorMessage', '')}"[:80]
    except (ValueError, AttributeError):
        return last_error[:80]
