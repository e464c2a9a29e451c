"""``pyfaas token`` and ``pyfaas secret``: API tokens and secrets (the admin token's work)."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from pyfaas.cli.client import ApiClient, CliError
from pyfaas.cli.common import TokenOpt, UrlOpt, err, out, when

token_app = typer.Typer(
    help="API tokens with scopes: admin, deploy, invoke, read.", no_args_is_help=True
)
secret_app = typer.Typer(
    help="Secrets: values stored encrypted, given to functions as environment variables.",
    no_args_is_help=True,
)


@token_app.command("create")
def create_token(
    name: Annotated[str, typer.Argument(help="Who holds the token, e.g. ci")],
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", "-s", help="admin, deploy, invoke or read; repeatable"),
    ] = None,
    function: Annotated[
        list[str] | None,
        typer.Option("--function", "-f", help="Only this function; repeatable [default: all]"),
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Create a token and print it (shown this once: keep it)."""
    if not scope:
        raise CliError("give at least one --scope: admin, deploy, invoke or read")
    body: dict[str, Any] = {"name": name, "scopes": scope, "functions": function or None}
    created = ApiClient(url, token).json("POST", "/v1/tokens", json=body)
    limited = f" for {', '.join(created['functions'])}" if created["functions"] else ""
    err.print(
        f"[green]✓[/green] Created token [bold]{created['id']}[/bold] ({created['name']}: "
        f"{', '.join(created['scopes'])}{limited}); it is shown this once:"
    )
    sys.stdout.write(created["token"] + "\n")


@token_app.command("ls")
def list_tokens(url: UrlOpt = None, token: TokenOpt = None) -> None:
    """List tokens (never the tokens themselves)."""
    tokens = ApiClient(url, token).json("GET", "/v1/tokens")["tokens"]
    table = Table("id", "name", "scopes", "functions", "created", "revoked")
    for t in tokens:
        table.add_row(
            t["id"],
            t["name"],
            ",".join(t["scopes"]),
            ",".join(t["functions"]) if t["functions"] else "all",
            when(t["created_at"]),
            when(t["revoked_at"]) if t["revoked_at"] else "-",
        )
    out.print(table)


@token_app.command("revoke")
def revoke_token(
    token_id: Annotated[str, typer.Argument(help="The token's id (`pyfaas token ls`)")],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Revoke a token: refused from now on (within a second on other servers)."""
    revoked = ApiClient(url, token).json("DELETE", f"/v1/tokens/{token_id}")
    err.print(f"[green]✓[/green] Revoked token [bold]{revoked['id']}[/bold] ({revoked['name']})")


@secret_app.command("set")
def set_secret(
    name: Annotated[str, typer.Argument(help="Secret name")],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Set a secret. The value is read from stdin (a pipe) or asked for: never a flag,
    which would land in the shell's history and the process list."""
    if sys.stdin.isatty():
        value = getpass.getpass(f"value of {name} (not echoed): ")
    else:
        value = sys.stdin.read()
        if value.endswith("\n"):  # what `echo` and here-strings add
            value = value[:-2] if value.endswith("\r\n") else value[:-1]
    if not value:
        raise CliError("the value is empty: pipe it in (`pyfaas secret set NAME < file`)")
    response = ApiClient(url, token).request("PUT", f"/v1/secrets/{name}", json={"value": value})
    users = response.json()["functions"]
    state = "Created" if response.status_code == 201 else "Updated"
    note = f"; new workers for {', '.join(users)}" if users and state == "Updated" else ""
    err.print(f"[green]✓[/green] {state} secret [bold]{name}[/bold]{note}")


@secret_app.command("ls")
def list_secrets(url: UrlOpt = None, token: TokenOpt = None) -> None:
    """List secrets and the functions using them (never a value)."""
    found = ApiClient(url, token).json("GET", "/v1/secrets")["secrets"]
    table = Table("name", "used by", "updated")
    for s in found:
        table.add_row(s["name"], ",".join(s["functions"]) or "-", when(s["updated_at"]))
    out.print(table)


@secret_app.command("rm")
def remove_secret(
    name: Annotated[str, typer.Argument(help="Secret name")],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Delete a secret that no function uses."""
    ApiClient(url, token).request("DELETE", f"/v1/secrets/{name}")
    err.print(f"[green]✓[/green] Deleted secret [bold]{name}[/bold]")
