"""``pyfaas plan`` and ``pyfaas deploy`` of a whole app (a folder with a ``pyfaas.toml``),
and ``--watch``, which deploys again whenever a file of the app changes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from pyfaas.cli.app_deploy import AppliedPlan, apply_plan, first_call
from pyfaas.cli.app_plan import Plan, fetch_deployed, make_plan, render_plan
from pyfaas.cli.client import ApiClient, CliError
from pyfaas.cli.common import TokenOpt, UrlOpt, err, out
from pyfaas.cli.manifest import AppManifest, load_manifest
from pyfaas.packaging.archive import SKIPPED_DIRS

DirOpt = Annotated[
    Path | None, typer.Option("--dir", help="The app's folder (holding pyfaas.toml) [default: .]")
]


def plan(directory: DirOpt = None, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Show what `pyfaas deploy` would create, update and delete in an app (pyfaas.toml)."""
    client = ApiClient(url, token)
    manifest, app_plan = _plan(client, directory or Path.cwd())
    render_plan(app_plan, out, str(manifest.file))


def deploy_app(
    directory: Path, client: ApiClient, *, watch: bool = False, event: str = "{}"
) -> AppliedPlan | None:
    """Deploy the app in ``directory`` (plan, then apply it, all or nothing); with
    ``watch``, keep deploying on each change until interrupted. Raises CliError."""
    if not watch:
        return _deploy_once(client, directory, None)
    _watch(client, directory, event.encode())
    return None


def _plan(client: ApiClient, directory: Path) -> tuple[AppManifest, Plan]:
    manifest = load_manifest(directory)
    deployed = fetch_deployed(client, manifest.name, manifest.functions)
    return manifest, make_plan(manifest.name, manifest.functions, deployed)


def _deploy_once(client: ApiClient, directory: Path, event: bytes | None) -> AppliedPlan:
    manifest, app_plan = _plan(client, directory)
    render_plan(app_plan, out, str(manifest.file))
    if app_plan.empty:
        return AppliedPlan(functions=sorted(manifest.functions))
    started_steps = len(app_plan.changes)
    applied = apply_plan(client, app_plan, out, manifest.where)
    applied.functions = sorted(manifest.functions)
    out.print(
        f"[green]✓[/green] Deployed app [bold]{manifest.name}[/bold]: "
        f"{applied.steps} of {started_steps} change(s) applied."
    )
    if event is not None:
        for name, init_ms in applied.redeployed.items():
            init = f"init {init_ms:.1f} ms, " if init_ms is not None else ""
            out.print(f"  {name}: {init}{first_call(client, name, event)}", highlight=False)
    return applied


def _watch(client: ApiClient, directory: Path, event: bytes) -> None:
    from watchfiles import DefaultFilter, watch

    ignored = DefaultFilter(ignore_dirs=(*DefaultFilter.ignore_dirs, *SKIPPED_DIRS))
    _deploy_reporting(client, directory, event)
    out.print(f"Watching {directory.resolve()} for changes (Ctrl-C to stop).")
    for changes in watch(directory, watch_filter=ignored, debounce=400, raise_interrupt=False):
        names = sorted({Path(p).name for _, p in changes})
        out.print(f"Changed: {', '.join(names)}")
        _deploy_reporting(client, directory, event)
        out.print("Watching for changes.")


def _deploy_reporting(client: ApiClient, directory: Path, event: bytes) -> None:
    """One deploy in watch mode: an error is shown, and watching goes on."""
    try:
        _deploy_once(client, directory, event)
    except CliError as exc:
        err.print(Text(f"pyfaas: {exc.message}", style="red"))


def check_single_function_options(given: Mapping[str, object]) -> None:
    """Refuse options of a one-function deploy in an app deploy (the manifest has them)."""
    used = [f"--{k.replace('_', '-')}" for k, v in given.items() if v]
    if used:
        raise CliError(
            f"{', '.join(used)} apply to one function (`pyfaas deploy PATH`); an app sets "
            "them per function in pyfaas.toml"
        )
