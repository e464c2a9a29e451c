"""``pyfaas schedule``: add, list, show, enable, disable and remove a function's schedules."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from pyfaas.cli.client import ApiClient, CliError
from pyfaas.cli.common import TokenOpt, UrlOpt, err, out, when

schedule = typer.Typer(
    help="Invoke a function on a schedule: rate(5 minutes), cron(0 12 * * ? *), */5 * * * *.",
    no_args_is_help=True,
)

FunctionArg = Annotated[str, typer.Argument(help="Function name")]
IdArg = Annotated[str, typer.Argument(help="Schedule id (see `pyfaas schedule ls FUNCTION`)")]


@schedule.command("add")
def add(
    function: FunctionArg,
    expression: Annotated[
        str,
        typer.Argument(
            help="rate(5 minutes), cron(0 12 * * ? *) (EventBridge), or a 5-field cron line; "
            "rate(N seconds) is a pyfaas extension"
        ),
    ],
    input_json: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            help="Fixed event: JSON, or @file [default: EventBridge's Scheduled Event]",
        ),
    ] = None,
    missed_runs: Annotated[
        str,
        typer.Option(help="After downtime: fire_once (one catch-up run) or skip"),
    ] = "fire_once",
    timezone: Annotated[str, typer.Option(help="IANA time zone for cron expressions")] = "UTC",
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Add a schedule to a function (NAME:ALIAS or NAME:VERSION to run that); prints its id."""
    function, _, qualifier = function.partition(":")
    body: dict[str, Any] = {
        "expression": expression,
        "missed_runs": missed_runs,
        "timezone": timezone,
        "enabled": not disabled,
    }
    if qualifier:
        body["qualifier"] = qualifier
    if input_json is not None:
        body["input"] = _read_input(input_json)
    created = ApiClient(url, token).json("POST", f"/v1/functions/{function}/schedules", json=body)
    sys.stdout.write(created["id"] + "\n")
    err.print(f"[green]✓[/green] {function}: {expression} ({_next(created)})")


@schedule.command("ls")
def list_schedules(
    function: FunctionArg,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """List a function's schedules."""
    found = ApiClient(url, token).json("GET", f"/v1/functions/{function}/schedules")["schedules"]
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
    table = Table("id", "expression", "enabled", "missed runs", "input", "next", "last fired")
    for s in found:
        table.add_row(
            s["id"],
            s["expression"] + ("" if s["timezone"] == "UTC" else f" ({s['timezone']})"),
            "yes" if s["enabled"] else "no",
            s["missed_runs"],
            "Scheduled Event" if s["input"] is None else json.dumps(s["input"])[:40],
            when(s["next_fire_at"]) if s["next_fire_at"] else "-",
            when(s["last_fired_at"]) if s["last_fired_at"] else "-",
        )
    out.print(table if found else f"{function} has no schedules: `pyfaas schedule add` adds one.")


@schedule.command("show")
def show(
    function: FunctionArg, schedule_id: IdArg, url: UrlOpt = None, token: TokenOpt = None
) -> None:
    """Show one schedule as JSON."""
    info = ApiClient(url, token).json("GET", f"/v1/functions/{function}/schedules/{schedule_id}")
    sys.stdout.write(json.dumps(info, indent=2) + "\n")


@schedule.command("enable")
def enable(
    function: FunctionArg, schedule_id: IdArg, url: UrlOpt = None, token: TokenOpt = None
) -> None:
    """Enable a schedule; it fires from its next slot on (nothing missed meanwhile runs)."""
    _set_enabled(function, schedule_id, True, url, token)


@schedule.command("disable")
def disable(
    function: FunctionArg, schedule_id: IdArg, url: UrlOpt = None, token: TokenOpt = None
) -> None:
    """Disable a schedule, keeping it."""
    _set_enabled(function, schedule_id, False, url, token)


@schedule.command("rm")
def remove(
    function: FunctionArg, schedule_id: IdArg, url: UrlOpt = None, token: TokenOpt = None
) -> None:
    """Delete a schedule."""
    ApiClient(url, token).request("DELETE", f"/v1/functions/{function}/schedules/{schedule_id}")
    err.print(f"[green]✓[/green] Deleted schedule {schedule_id} of [bold]{function}[/bold]")


def _set_enabled(
    function: str, schedule_id: str, enabled: bool, url: str | None, token: str | None
) -> None:
    info = ApiClient(url, token).json(
        "PATCH",
        f"/v1/functions/{function}/schedules/{schedule_id}",
        json={"enabled": enabled},
    )
    state = "Enabled" if enabled else "Disabled"
    err.print(f"[green]✓[/green] {state} {schedule_id} of [bold]{function}[/bold] ({_next(info)})")


def _next(info: dict[str, Any]) -> str:
    if not info["enabled"]:
        return "disabled"
    return f"next {when(info['next_fire_at'])}" if info["next_fire_at"] else "no slot to come"


def _read_input(raw: str) -> Any:
    text = raw
    if raw.startswith("@"):
        try:
            with open(raw[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise CliError(f"cannot read input file {raw[1:]}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"--input is not valid JSON: {exc}") from None
