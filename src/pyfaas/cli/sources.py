"""``pyfaas sources``: event source mappings from Redis Streams, RabbitMQ and NATS JetStream."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from pyfaas.cli.client import ApiClient
from pyfaas.cli.common import TokenOpt, UrlOpt, err, out, when

sources = typer.Typer(
    help="Event source mappings: broker streams and queues that feed a function in batches.",
    no_args_is_help=True,
)
PATH = "/v1/event-source-mappings"


@sources.command("add")
def add(
    function: Annotated[str, typer.Argument(help="Function that receives the batches")],
    source_type: Annotated[str, typer.Option("--type", "-t", help="redis, rabbitmq or nats")],
    broker: Annotated[
        str, typer.Option("--broker", "-b", help="redis://, amqp:// or nats:// URL of the broker")
    ],
    stream: Annotated[str | None, typer.Option(help="Redis stream or JetStream stream")] = None,
    queue: Annotated[str | None, typer.Option(help="RabbitMQ queue")] = None,
    subject: Annotated[str | None, typer.Option(help="JetStream filter subject")] = None,
    consumer_group: Annotated[
        str | None, typer.Option(help="Redis consumer group / JetStream durable name")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Records per invocation")] = None,
    batching_window: Annotated[
        float | None, typer.Option(help="Seconds to wait for a fuller batch (0-300)")
    ] = None,
    retries: Annotated[
        int | None, typer.Option(help="Retries of a failed batch (-1: until it succeeds)")
    ] = None,
    on_failure: Annotated[
        str | None, typer.Option(help="Function that gets a record of each batch that failed")
    ] = None,
    report_batch_item_failures: Annotated[
        bool, typer.Option(help="Honour batchItemFailures in the function's response")
    ] = False,
    starting_position: Annotated[
        str | None, typer.Option(help="TRIM_HORIZON or LATEST (streams)")
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Map a stream or queue to a function; the server checks it can connect first."""
    body: dict[str, Any] = {"function": function, "type": source_type, "url": broker}
    optional = {
        "stream": stream,
        "queue": queue,
        "subject": subject,
        "consumer_group": consumer_group,
        "batch_size": batch_size,
        "maximum_batching_window_s": batching_window,
        "maximum_retry_attempts": retries,
        "on_failure": on_failure,
        "starting_position": starting_position,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if report_batch_item_failures:
        body["function_response_types"] = ["ReportBatchItemFailures"]
    if disabled:
        body["enabled"] = False
    created = ApiClient(url, token).json("POST", PATH, json=body)
    err.print(f"[green]✓[/green] Created mapping {created['state']} -> [bold]{function}[/bold]")
    sys.stdout.write(created["uuid"] + "\n")


@sources.command("ls")
def list_mappings(
    function: Annotated[str | None, typer.Option("--function", "-f")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """List mappings with their state and health."""
    params = {"function": function} if function else {}
    found = ApiClient(url, token).json("GET", PATH, params=params)["event_source_mappings"]
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
    table = Table("uuid", "function", "type", "source", "batch", "state", "health", "last error")
    for m in found:
        table.add_row(
            m["uuid"],
            m["function"],
            m["type"],
            m.get("stream") or m.get("queue") or "-",
            str(m["batch_size"]),
            m["state"],
            m["health"],
            (m.get("last_error") or "-")[:60],
        )
    out.print(table if found else "No event source mappings: `pyfaas sources add` creates one.")


@sources.command("show")
def show(
    uuid: Annotated[str, typer.Argument()],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Show a mapping's settings, state, health and counters (JSON)."""
    info = ApiClient(url, token).json("GET", f"{PATH}/{uuid}")
    sys.stdout.write(json.dumps(info, indent=2) + "\n")
    if info.get("last_error_at"):
        err.print(f"last error at {when(info['last_error_at'])}: {info['last_error']}")


def _set_enabled(uuid: str, enabled: bool, url: str | None, token: str | None) -> None:
    info = ApiClient(url, token).json("PATCH", f"{PATH}/{uuid}", json={"enabled": enabled})
    err.print(f"[green]✓[/green] Mapping {uuid} is {info['state']}")


@sources.command("enable")
def enable(
    uuid: Annotated[str, typer.Argument()], url: UrlOpt = None, token: TokenOpt = None
) -> None:
    """Start polling a mapping again."""
    _set_enabled(uuid, True, url, token)


@sources.command("disable")
def disable(
    uuid: Annotated[str, typer.Argument()], url: UrlOpt = None, token: TokenOpt = None
) -> None:
    """Stop polling a mapping (the broker keeps its messages)."""
    _set_enabled(uuid, False, url, token)


@sources.command("rm")
def remove(
    uuid: Annotated[str, typer.Argument()], url: UrlOpt = None, token: TokenOpt = None
) -> None:
    """Delete a mapping."""
    ApiClient(url, token).request("DELETE", f"{PATH}/{uuid}")
    err.print(f"[green]✓[/green] Deleted mapping {uuid}")
