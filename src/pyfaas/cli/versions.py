"""``pyfaas publish``, ``pyfaas versions`` and ``pyfaas alias``: versions and weighted aliases."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from pyfaas.cli.client import ApiClient, CliError
from pyfaas.cli.common import TokenOpt, UrlOpt, err, out, when
from pyfaas.cli.release import parse_share, show_rollout

FunctionArg = Annotated[str, typer.Argument(help="Function name")]
AliasArg = Annotated[str, typer.Argument(help="Alias name (e.g. live)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON output")]

alias_app = typer.Typer(
    help="Aliases: names for versions, with weighted routing (canaries) and rollback.",
    no_args_is_help=True,
)


def publish(
    function: FunctionArg,
    description: Annotated[
        str | None, typer.Option("--description", "-d", help="[default: the function's]")
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Publish the function's $LATEST as an immutable numbered version; prints its number."""
    body = {} if description is None else {"description": description}
    response = ApiClient(url, token).request(
        "POST", f"/v1/functions/{function}/versions", json=body
    )
    version = response.json()
    sys.stdout.write(version["version"] + "\n")
    if response.status_code == 201:
        err.print(f"[green]✓[/green] Published {function}:{version['version']}")
    else:
        err.print(f"Nothing changed since version {version['version']}: nothing published")


def versions(
    function: FunctionArg,
    delete: Annotated[
        str | None, typer.Option("--delete", metavar="VERSION", help="Delete this version")
    ] = None,
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """List the function's published versions (or delete one with --delete N)."""
    client = ApiClient(url, token)
    if delete is not None:
        client.request("DELETE", f"/v1/functions/{function}/versions/{delete}")
        err.print(f"[green]✓[/green] Deleted {function}:{delete}")
        return
    found = client.json("GET", f"/v1/functions/{function}/versions")["versions"]
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
    table = Table("version", "code", "memory", "timeout", "description", "published")
    for v in found:
        table.add_row(
            v["version"],
            v["code_sha256"][:12],
            f"{v['memory_mb']} MB",
            f"{v['timeout_s']} s",
            v["description"] or "-",
            when(v["created_at"]),
        )
    out.print(table if found else f"No versions yet: `pyfaas publish {function}` makes one.")


@alias_app.command("set")
def set_alias(
    function: FunctionArg,
    alias: AliasArg,
    version: Annotated[str, typer.Argument(help="The published version it points to")],
    canary: Annotated[
        str | None,
        typer.Option(
            help="Another version and its share: 4=10% (or 4=0.1); leave out to "
            "send everything to VERSION (a rollback)"
        ),
    ] = None,
    provisioned: Annotated[
        int, typer.Option("--provisioned", help="Workers kept ready for the alias")
    ] = 0,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Point an alias at a version, maybe with a canary: `alias set fn live 3 --canary 4=10%`."""
    body: dict[str, Any] = {
        "version": version,
        "additional_version_weights": _canary(canary),
        "description": description,
        "provisioned_concurrency": provisioned,
    }
    stored = ApiClient(url, token).json(
        "PUT", f"/v1/functions/{function}/aliases/{alias}", json=body
    )
    err.print(f"[green]✓[/green] {function}:{alias} -> {_routing(stored)}")


@alias_app.command("ls")
def list_aliases(
    function: FunctionArg, as_json: JsonOpt = False, url: UrlOpt = None, token: TokenOpt = None
) -> None:
    """List the function's aliases and where their traffic goes."""
    found = ApiClient(url, token).json("GET", f"/v1/functions/{function}/aliases")["aliases"]
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
    table = Table("alias", "routing", "provisioned", "description", "updated")
    for a in found:
        table.add_row(
            a["name"],
            _routing(a),
            str(a["provisioned_concurrency"]),
            a["description"] or "-",
            when(a["updated_at"]),
        )
    out.print(table if found else f"No aliases: `pyfaas alias set {function} live 1` makes one.")


@alias_app.command("show")
def show_alias(
    function: FunctionArg,
    alias: AliasArg,
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Show one alias."""
    found = ApiClient(url, token).json("GET", f"/v1/functions/{function}/aliases/{alias}")
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
    table = Table(show_header=False, box=None)
    table.add_row("[bold]alias[/bold]", f"{function}:{found['name']}")
    table.add_row("[bold]routing[/bold]", _routing(found))
    table.add_row("[bold]provisioned[/bold]", str(found["provisioned_concurrency"]))
    table.add_row("[bold]description[/bold]", found["description"] or "-")
    table.add_row(
        "[bold]created / updated[/bold]",
        f"{when(found['created_at'])} / {when(found['updated_at'])}",
    )
    out.print(table)


alias_app.command("rollout")(show_rollout)


@alias_app.command("rm")
def remove_alias(
    function: FunctionArg, alias: AliasArg, url: UrlOpt = None, token: TokenOpt = None
) -> None:
    """Delete an alias (and its function URL); its versions stay."""
    ApiClient(url, token).request("DELETE", f"/v1/functions/{function}/aliases/{alias}")
    err.print(f"[green]✓[/green] Deleted alias {function}:{alias}")


def _canary(value: str | None) -> dict[str, float]:
    """``4=10%`` or ``4=0.1`` -> {"4": 0.1}; the server checks the version and range."""
    if value is None:
        return {}
    version, sep, share = value.partition("=")
    if not sep or not version:
        raise CliError(
            f"--canary takes VERSION=PERCENT% (e.g. 4=10%) or VERSION=WEIGHT (4=0.1), got {value!r}"
        )
    return {version: parse_share(share, "--canary")}


def _routing(alias: dict[str, Any]) -> str:
    weights = alias.get("additional_version_weights") or {}
    if not weights:
        return f"{alias['version']} (100%)"
    ((extra, weight),) = weights.items()
    share = round(weight * 100, 4)
    return f"{alias['version']} ({round(100 - share, 4):g}%), {extra} ({share:g}%)"
