"""``pyfaas url``: give functions HTTP endpoints (function URLs) and manage them."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from pyfaas.cli.client import ApiClient, CliError
from pyfaas.cli.common import TokenOpt, UrlOpt, err, out, when

url_app = typer.Typer(
    help="Function URLs: an HTTP endpoint per function at /fn/NAME/.", no_args_is_help=True
)

AuthOpt = Annotated[
    str | None,
    typer.Option("--auth-type", help="NONE (anyone may call) or TOKEN (the server's API token)"),
]
OriginOpt = Annotated[
    list[str] | None,
    typer.Option("--allow-origin", help="CORS: an origin (https://example.com) or *; repeatable"),
]
MethodOpt = Annotated[
    list[str] | None, typer.Option("--allow-method", help="CORS: GET, POST, ... or *; repeatable")
]
HeaderOpt = Annotated[
    list[str] | None, typer.Option("--allow-header", help="CORS: a request header; repeatable")
]
ExposeOpt = Annotated[
    list[str] | None,
    typer.Option("--expose-header", help="CORS: a response header scripts may read; repeatable"),
]
MaxAgeOpt = Annotated[
    int | None, typer.Option("--max-age", help="CORS: seconds a browser caches a preflight")
]
CredentialsOpt = Annotated[
    bool, typer.Option("--allow-credentials", help="CORS: allow cookies and credentials")
]


def _cors(
    origins: list[str] | None,
    methods: list[str] | None,
    headers: list[str] | None,
    expose: list[str] | None,
    max_age: int | None,
    credentials: bool,
) -> dict[str, Any] | None:
    """The CORS object of the options given, or None when none was."""
    if not (origins or methods or headers or expose or max_age is not None or credentials):
        return None
    return {
        "allow_origins": origins or [],
        "allow_methods": methods or [],
        "allow_headers": headers or [],
        "expose_headers": expose or [],
        "max_age": max_age,
        "allow_credentials": credentials,
    }


NameArg = Annotated[
    str, typer.Argument(help="Function name, or NAME:ALIAS / NAME:VERSION for a qualified URL")
]


def _target(name: str) -> tuple[str, str | None]:
    function, sep, qualifier = name.partition(":")
    return function, qualifier if sep else None


def _qualifier_param(qualifier: str | None) -> dict[str, str]:
    return {} if qualifier is None else {"qualifier": qualifier}


@url_app.command("create")
def create(
    name: NameArg,
    auth_type: AuthOpt = None,
    allow_origin: OriginOpt = None,
    allow_method: MethodOpt = None,
    allow_header: HeaderOpt = None,
    expose_header: ExposeOpt = None,
    max_age: MaxAgeOpt = None,
    allow_credentials: CredentialsOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Give a function a URL and print it."""
    if auth_type is None:
        raise CliError("--auth-type is required: NONE (public) or TOKEN (the server's API token)")
    body: dict[str, Any] = {"auth_type": auth_type}
    cors = _cors(
        allow_origin, allow_method, allow_header, expose_header, max_age, allow_credentials
    )
    if cors is not None:
        body["cors"] = cors
    _send("POST", name, body, url, token, "Created")


@url_app.command("update")
def update(
    name: NameArg,
    auth_type: AuthOpt = None,
    allow_origin: OriginOpt = None,
    allow_method: MethodOpt = None,
    allow_header: HeaderOpt = None,
    expose_header: ExposeOpt = None,
    max_age: MaxAgeOpt = None,
    allow_credentials: CredentialsOpt = False,
    no_cors: Annotated[bool, typer.Option("--no-cors", help="Remove the CORS settings")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Change a URL's auth type, or replace its CORS settings (all at once), and print it."""
    body: dict[str, Any] = {}
    if auth_type is not None:
        body["auth_type"] = auth_type
    cors = _cors(
        allow_origin, allow_method, allow_header, expose_header, max_age, allow_credentials
    )
    if cors is not None and no_cors:
        raise CliError("give CORS options or --no-cors, not both")
    if cors is not None or no_cors:
        body["cors"] = cors
    if not body:
        raise CliError("nothing to change: give --auth-type, CORS options or --no-cors")
    _send("PATCH", name, body, url, token, "Updated")


def _send(
    method: str, name: str, body: dict[str, Any], url: str | None, token: str | None, done: str
) -> None:
    """Send the configuration; say what was done on stderr and print the URL on stdout."""
    function, qualifier = _target(name)
    if qualifier is not None:
        body["qualifier"] = qualifier
    info = ApiClient(url, token).json(method, f"/v1/functions/{function}/url", json=body)
    err.print(f"[green]✓[/green] {done} the URL of [bold]{name}[/bold] ({info['auth_type']})")
    sys.stdout.write(info["url"] + "\n")


@url_app.command("show")
def show(
    name: NameArg,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Show a function's URL, auth type and CORS settings."""
    function, qualifier = _target(name)
    info = ApiClient(url, token).json(
        "GET", f"/v1/functions/{function}/url", params=_qualifier_param(qualifier)
    )
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return
    table = Table(show_header=False, box=None)
    table.add_row("[bold]url[/bold]", info["url"])
    table.add_row("[bold]auth_type[/bold]", info["auth_type"])
    cors = info["cors"]
    if cors is None:
        table.add_row("[bold]cors[/bold]", "-")
    else:
        for key, value in cors.items():
            shown = ", ".join(value) if isinstance(value, list) else value
            table.add_row(f"[bold]cors.{key}[/bold]", "-" if shown in (None, "") else str(shown))
    table.add_row("[bold]url_id[/bold]", info["url_id"])
    table.add_row(
        "[bold]created / updated[/bold]",
        f"{when(info['created_at'])} / {when(info['updated_at'])}",
    )
    out.print(table)


@url_app.command("rm")
def remove(
    name: NameArg,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Delete a function's URL (the function stays)."""
    function, qualifier = _target(name)
    ApiClient(url, token).request(
        "DELETE", f"/v1/functions/{function}/url", params=_qualifier_param(qualifier)
    )
    err.print(f"[green]✓[/green] Deleted the URL of [bold]{name}[/bold]")
