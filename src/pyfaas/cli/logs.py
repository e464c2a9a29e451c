"""``pyfaas logs``: search a function's logs, or follow them as they are written."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import typer

from pyfaas.cli.client import ApiClient, CliError
from pyfaas.cli.common import TokenOpt, UrlOpt

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# A follower that lost its connection tries again for this long before it gives up.
RECONNECT_FOR_S = 30.0


def parse_when(raw: str, option: str, now: float | None = None) -> float:
    """Seconds since the epoch from ``10m`` / ``2h`` / ``1d`` ago, an ISO 8601 time (UTC
    unless it says), or a number of seconds since the epoch. Raises CliError."""
    now = time.time() if now is None else now
    text = raw.strip()
    relative = _DURATION.fullmatch(text)
    if relative:
        return now - float(relative.group(1)) * _UNIT_S[relative.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(
            f"{option} takes a time such as 10m, 2h, 1d (ago), 2026-11-25T10:00:00Z or "
            f"seconds since the epoch, not {raw!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def logs(
    name: Annotated[str, typer.Argument(help="Function name")],
    request_id: Annotated[
        str | None, typer.Option("--request-id", "-r", help="One invocation only")
    ] = None,
    filter_text: Annotated[
        str | None,
        typer.Option("--filter", help="Only lines containing this text (case-sensitive)"),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="From this time: 10m, 2h, 1d ago, or ISO 8601")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Up to this time (as --since)")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines as they come")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="One JSON object per line; JSON lines under `fields`"),
    ] = False,
    limit: Annotated[int, typer.Option(help="How many invocations to show")] = 20,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Print a function's logs: START, the handler's output, END and REPORT lines."""
    params: dict[str, Any] = {"limit": limit}
    if request_id:
        params["request_id"] = request_id
    if filter_text:
        params["filter"] = filter_text
    if since is not None:
        params["since"] = parse_when(since, "--since")
    if until is not None:
        if follow:
            raise CliError("--follow has no end: leave out --until")
        params["until"] = parse_when(until, "--until")
    if "since" in params and "until" in params and params["since"] > params["until"]:
        raise CliError(f"--since {since} is after --until {until}: swap them")
    client = ApiClient(url, token)
    page = client.json("GET", f"/v1/functions/{name}/logs", params=params)
    _print_records(page["records"], as_json)
    if follow:
        params.pop("limit")
        _follow(client, name, params, page["last_id"], as_json)


def _follow(
    client: ApiClient, name: str, params: dict[str, Any], after: int, as_json: bool
) -> None:
    """Print records from the server's event stream, reconnecting with the last id seen."""
    path = f"/v1/functions/{name}/logs/stream"
    failing_since: float | None = None
    while True:
        try:
            with client.stream(path, params=params, headers={"Last-Event-ID": str(after)}) as s:
                failing_since = None
                for event_id, data in _sse_events(s.iter_lines()):
                    _print_records([json.loads(data)], as_json)
                    after = event_id
        except httpx.TransportError as exc:
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since > RECONNECT_FOR_S:
                raise CliError(
                    f"lost the log stream of {name} at {client.url} and could not reconnect "
                    f"for {RECONNECT_FOR_S:.0f} s ({exc.__class__.__name__})"
                ) from None
            time.sleep(0.5)
            continue
        # The server ended the stream (it is stopping): pick up where it left off.
        failing_since = failing_since or time.monotonic()
        time.sleep(0.2)


def _sse_events(lines: Iterator[str]) -> Iterator[tuple[int, str]]:
    """(id, data) of each ``log`` event of a text/event-stream; comments are skipped."""
    event_id: int | None = None
    data: list[str] = []
    kind = "message"
    for line in lines:
        if not line:
            if data and event_id is not None and kind == "log":
                yield event_id, "\n".join(data)
            event_id, data, kind = None, [], "message"
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id":
            event_id = int(value)
        elif field == "data":
            data.append(value)
        elif field == "event":
            kind = value


def _print_records(records: list[dict[str, Any]], as_json: bool) -> None:
    for record in records:
        if not as_json:
            sys.stdout.write(record["text"])
            continue
        fields = {s["line"]: s["fields"] for s in record.get("structured", [])}
        for n, line in enumerate(record["text"].splitlines()):
            item: dict[str, Any] = {
                "id": record["id"],
                "request_id": record["request_id"],
                "timestamp": record["timestamp"],
                "line": n,
                "message": line,
            }
            if n in fields:
                item["fields"] = fields[n]
            sys.stdout.write(json.dumps(item) + "\n")
    sys.stdout.flush()
