"""``pyfaas deploy --publish --alias live --canary 10% --auto-rollback``: after a deploy,
publish each function, move its alias (maybe as a canary), and follow the rollouts the
server watches; and ``pyfaas alias rollout`` to see where one stands."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pyfaas.cli.client import ApiClient, CliError
from pyfaas.cli.common import TokenOpt, UrlOpt, err, out, when

PublishOpt = Annotated[
    bool, typer.Option("--publish", help="Publish the deployed code as a numbered version")
]
AliasOpt = Annotated[
    str | None,
    typer.Option("--alias", help="With --publish: point this alias at the new version"),
]
CanaryOpt = Annotated[
    str | None,
    typer.Option(
        "--canary",
        metavar="PERCENT",
        help="With --alias: send only this share to the new version (10% or 0.1)",
    ),
]
AutoRollbackOpt = Annotated[
    bool,
    typer.Option(
        "--auto-rollback",
        help="With --canary: the server watches the new version and goes back to the old "
        "one if its error rate crosses --error-threshold within --window",
    ),
]
WindowOpt = Annotated[
    str | None, typer.Option("--window", help="With --auto-rollback: 60s, 5m, 1h [default 60s]")
]
ThresholdOpt = Annotated[
    str | None,
    typer.Option("--error-threshold", help="With --auto-rollback: 5% or 0.05 [default 5%]"),
]
PromoteOpt = Annotated[
    bool,
    typer.Option(
        "--promote", help="With --auto-rollback: a clean window moves 100% to the new version"
    ),
]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_POLL_S = 0.5


@dataclass(frozen=True, slots=True)
class Release:
    """What to do after a deploy: publish, and maybe move an alias (as a canary)."""

    alias: str | None = None
    canary: float | None = None  # the new version's share
    auto_rollback: bool = False
    window_s: float = 60.0
    error_threshold: float = 0.05
    promote: bool = False


def release_options(
    *,
    publish: bool,
    alias: str | None,
    canary: str | None,
    auto_rollback: bool,
    window: str | None,
    error_threshold: str | None,
    promote: bool,
) -> Release | None:
    """Check the release flags together; None without --publish. Raises CliError."""
    needs = (
        (alias is not None and not publish, "--alias", "--publish"),
        (canary is not None and alias is None, "--canary", "--alias NAME"),
        (auto_rollback and canary is None, "--auto-rollback", "--canary PERCENT"),
        (window is not None and not auto_rollback, "--window", "--auto-rollback"),
        (error_threshold is not None and not auto_rollback, "--error-threshold", "--auto-rollback"),
        (promote and not auto_rollback, "--promote", "--auto-rollback"),
    )
    for wrong, flag, other in needs:
        if wrong:
            raise CliError(f"{flag} needs {other}")
    if not publish:
        return None
    share = None if canary is None else parse_share(canary, "--canary")
    if share is not None and not 0 < share < 1:
        raise CliError(f"--canary takes a share between 0% and 100% (exclusive), got {canary!r}")
    threshold = (
        0.05 if error_threshold is None else parse_share(error_threshold, "--error-threshold")
    )
    if not 0 <= threshold < 1:
        raise CliError(
            f"--error-threshold takes 0% up to 100% (exclusive), got {error_threshold!r}"
        )
    window_s = 60.0 if window is None else _duration(window)
    return Release(alias, share, auto_rollback, window_s, threshold, promote)


def parse_share(text: str, flag: str) -> float:
    """``10%`` -> 0.1, ``0.1`` -> 0.1. Raises CliError naming ``flag``."""
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise CliError(
            f"{flag} takes a percentage (10%) or a fraction (0.1), got {text!r}"
        ) from None
    if share != share:  # NaN
        raise CliError(f"{flag} takes a percentage (10%) or a fraction (0.1), got {text!r}")
    return share


def _duration(text: str) -> float:
    unit = _UNITS.get(text[-1:])
    try:
        seconds = float(text[:-1] if unit else text) * (unit or 1.0)
    except ValueError:
        raise CliError(f"--window takes a duration such as 60s, 5m or 1h, got {text!r}") from None
    if not 1 <= seconds <= 86_400:
        raise CliError(f"--window must be 1s to 24h, got {text!r}")
    return seconds


def release(client: ApiClient, functions: list[str], plan: Release) -> None:
    """Publish each function, move its alias, and follow the rollouts started until they
    end. Raises CliError when one was rolled back (or stopped), naming it."""
    watched: list[str] = []
    for name in functions:
        version = _publish(client, name)
        if plan.alias is not None and _move_alias(client, name, version, plan):
            watched.append(name)
    if watched:
        _follow(client, watched, plan)


def _publish(client: ApiClient, name: str) -> str:
    response = client.request("POST", f"/v1/functions/{name}/versions", json={})
    version: str = response.json()["version"]
    if response.status_code == 201:
        err.print(f"[green]✓[/green] Published [bold]{name}[/bold]:{version}")
    else:
        err.print(f"  {name}: nothing changed since version {version}: nothing published")
    return version


def _move_alias(client: ApiClient, name: str, version: str, plan: Release) -> bool:
    """Point the alias at ``version`` (or start a canary to it); True when a rollout the
    server watches was started."""
    alias = plan.alias
    path = f"/v1/functions/{name}/aliases/{alias}"
    current = client.optional_json("GET", path)
    if current is None:
        client.request("PUT", path, json={"version": version})
        err.print(
            f"[green]✓[/green] Created alias {name}:{alias} -> {version} (100%): "
            "no earlier version to compare a canary with"
        )
        return False
    if current["version"] == version and not current["additional_version_weights"]:
        err.print(f"  {name}:{alias} already sends everything to {version}")
        return False
    if plan.canary is None:
        client.request("PATCH", path, json={"version": version, "additional_version_weights": {}})
        err.print(f"[green]✓[/green] {name}:{alias} -> {version} (100%)")
        return False
    if current["version"] == version:
        raise CliError(
            f"{name}:{alias} already points at {version} (with a canary to "
            f"{', '.join(current['additional_version_weights'])}): a canary of {version} "
            "needs the alias on an older version; `pyfaas alias set` moves it by hand"
        )
    old = current["version"]
    if not plan.auto_rollback:
        weights = {version: plan.canary}
        client.request("PATCH", path, json={"additional_version_weights": weights})
        err.print(
            f"[green]✓[/green] {name}:{alias} -> {old} ({_pct(1 - plan.canary)}), "
            f"{version} ({_pct(plan.canary)}); roll back with `pyfaas alias set {name} "
            f"{alias} {old}`"
        )
        return False
    body = {
        "version": version,
        "weight": plan.canary,
        "window_s": plan.window_s,
        "error_threshold": plan.error_threshold,
        "promote": plan.promote,
    }
    client.request("POST", f"{path}/rollout", json=body)
    err.print(
        f"[green]✓[/green] {name}:{alias} -> {old} ({_pct(1 - plan.canary)}), {version} "
        f"({_pct(plan.canary)}); the server watches {version} for {plan.window_s:g} s and "
        f"rolls back above {_pct(plan.error_threshold)} errors"
    )
    return True


def _follow(client: ApiClient, names: list[str], plan: Release) -> None:
    """Poll the rollouts until each has ended; Ctrl-C stops following, not the rollouts."""
    pending = list(names)
    failed: list[str] = []
    try:
        while pending:
            time.sleep(_POLL_S)
            for name in list(pending):
                found = client.json("GET", f"/v1/functions/{name}/aliases/{plan.alias}/rollout")
                if found["state"] == "watching":
                    continue
                pending.remove(name)
                good = found["state"] in ("passed", "promoted")
                mark = "[green]✓[/green]" if good else "[red]✗[/red]"
                err.print(
                    f"{mark} {name}:{plan.alias} {found['state'].replace('_', ' ')}: "
                    f"{escape(found['message'])}"
                )
                if not good:
                    failed.append(f"{name}:{plan.alias} {found['state'].replace('_', ' ')}")
    except KeyboardInterrupt:
        raise CliError(
            "stopped following; the server goes on watching "
            + ", ".join(f"`pyfaas alias rollout {n} {plan.alias}`" for n in pending),
            exit_code=130,
        ) from None
    if failed:
        raise CliError(f"canary failed: {', '.join(failed)}")


def _pct(share: float) -> str:
    return f"{round(share * 100, 4):g}%"


def show_rollout(
    function: Annotated[str, typer.Argument(help="Function name")],
    alias: Annotated[str, typer.Argument(help="Alias name (e.g. live)")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Show the alias's latest canary rollout: its state and the new version's errors."""
    found: dict[str, Any] = ApiClient(url, token).json(
        "GET", f"/v1/functions/{function}/aliases/{alias}/rollout"
    )
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
    rate = found["error_rate"]
    table = Table(show_header=False, box=None)
    table.add_row("[bold]rollout[/bold]", f"{function}:{alias}")
    table.add_row("[bold]state[/bold]", found["state"])
    table.add_row(
        "[bold]versions[/bold]",
        f"{found['previous_version']} -> {found['version']} ({_pct(found['weight'])})",
    )
    table.add_row(
        "[bold]errors[/bold]",
        f"{found['errors']} of {found['invocations']} "
        f"({'-' if rate is None else _pct(rate)}; rolls back above "
        f"{_pct(found['error_threshold'])})",
    )
    table.add_row(
        "[bold]window[/bold]", f"{found['window_s']:g} s from {when(found['started_at'])}"
    )
    table.add_row("[bold]message[/bold]", escape(found["message"]) or "-")
    out.print(table)
