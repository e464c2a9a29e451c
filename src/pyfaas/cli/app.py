"""Commands of the ``pyfaas`` CLI. Each parses its options, makes one call, renders."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from pyfaas.cli.access import secret_app, token_app
from pyfaas.cli.app_commands import check_single_function_options, deploy_app, plan
from pyfaas.cli.client import ApiClient, CliError
from pyfaas.cli.common import TokenOpt, UrlOpt, err, out, when
from pyfaas.cli.doctor import EphemeralStorageOpt, GpusOpt, NetworkOpt, doctor
from pyfaas.cli.events import dlq, invocation_status
from pyfaas.cli.logs import logs
from pyfaas.cli.python_app import deploy_python_app
from pyfaas.cli.release import (
    AliasOpt,
    AutoRollbackOpt,
    CanaryOpt,
    PromoteOpt,
    PublishOpt,
    ThresholdOpt,
    WindowOpt,
    release,
    release_options,
)
from pyfaas.cli.schedules import schedule
from pyfaas.cli.sources import sources
from pyfaas.cli.upload import upload_bundle
from pyfaas.cli.urls import url_app
from pyfaas.cli.usage import usage
from pyfaas.cli.versions import alias_app, publish, versions
from pyfaas.cli.web_app import web_app_label

app = typer.Typer(
    name="pyfaas",
    help="Serverless functions for Python on your own machines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default 8080]")] = None,
    home: Annotated[Path | None, typer.Option(help="Data directory [default ./.pyfaas]")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="sqlite:///... or postgresql+psycopg://...")
    ] = None,
    token: Annotated[str | None, typer.Option(help="Require this API token")] = None,
    deploy_dir: Annotated[
        Path | None, typer.Option(help="Deploy each sub-directory of this one at start")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="pyfaas.toml to read")] = None,
    executor: Annotated[
        str | None, typer.Option(help="Where workers run: local or ray [default local]")
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to use with --executor ray [default: start a local Ray]"),
    ] = None,
) -> None:
    """Run a pyfaas server (SQLite and local workers unless configured otherwise)."""
    from pyfaas.model import ConfigurationError
    from pyfaas.server import ServerConfig, run

    try:
        cfg = ServerConfig.load(
            file=config,
            host=host,
            port=port,
            home=home,
            database_url=database_url,
            token=token,
            deploy_dir=deploy_dir,
            executor=executor,
            ray_address=ray_address,
        )
    except ConfigurationError as exc:
        raise CliError(exc.message) from None
    if cfg.deploy_dir is not None and not cfg.deploy_dir.is_dir():
        raise CliError(f"--deploy-dir {cfg.deploy_dir} is not a directory")
    err.print(f"pyfaas serving on http://{cfg.host}:{cfg.port} (data in {cfg.home})")
    try:
        run(cfg)
    except ConfigurationError as exc:
        raise CliError(exc.message) from None


@app.command()
def deploy(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Directory or .zip holding the code, or a .py defining an App "
            "[default: the app in .]"
        ),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="[default: from path]")] = None,
    handler: Annotated[str, typer.Option(help="module.function")] = "handler.handler",
    runtime: Annotated[str, typer.Option()] = "python3.11",
    memory: Annotated[int, typer.Option(help="Memory in MB")] = 128,
    timeout: Annotated[int, typer.Option(help="Timeout in seconds")] = 3,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE, repeatable")
    ] = None,
    description: Annotated[str, typer.Option()] = "",
    secret: Annotated[
        list[str] | None,
        typer.Option("--secret", help="VARIABLE=SECRET: a secret as a variable; repeatable"),
    ] = None,
    no_overwrite: Annotated[
        bool, typer.Option("--no-overwrite", help="Fail if the function exists")
    ] = False,
    wsgi: Annotated[
        str | None, typer.Option(help="Run this WSGI app (module:app, e.g. Flask) for HTTP")
    ] = None,
    asgi: Annotated[
        str | None, typer.Option(help="Run this ASGI app (module:app, e.g. FastAPI) for HTTP")
    ] = None,
    app_dir: Annotated[
        Path | None, typer.Option("--app", help="Deploy the app in this folder (pyfaas.toml)")
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="App: deploy again on every change, invoke once")
    ] = False,
    watch_event: Annotated[
        str, typer.Option(help="With --watch: the JSON event of that invocation")
    ] = "{}",
    ephemeral_storage: EphemeralStorageOpt = None,
    network: NetworkOpt = None,
    publish: PublishOpt = False,
    alias: AliasOpt = None,
    canary: CanaryOpt = None,
    auto_rollback: AutoRollbackOpt = False,
    window: WindowOpt = None,
    error_threshold: ThresholdOpt = None,
    promote: PromoteOpt = False,
    gpus: GpusOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Create a function, or update its code and configuration if it exists. Without PATH
    (or with --app DIR): deploy the app whose pyfaas.toml is there, changed parts only.
    With --publish: publish each function, and with --alias move that alias to it, as a
    canary (--canary 10%) the server can watch and roll back (--auto-rollback)."""
    plan = release_options(
        publish=publish,
        alias=alias,
        canary=canary,
        auto_rollback=auto_rollback,
        window=window,
        error_threshold=error_threshold,
        promote=promote,
    )
    if plan is not None and watch:
        raise CliError("--publish makes versions for a release; --watch is for development")
    if path is None or app_dir is not None:
        if path is not None:
            raise CliError("give PATH (one function) or --app DIR (an app), not both")
        check_single_function_options(
            {"name": name, "env": env, "description": description, "no_overwrite": no_overwrite}
            | {"wsgi": wsgi, "asgi": asgi}
        )
        client = ApiClient(url, token)
        applied = deploy_app(app_dir or Path.cwd(), client, watch=watch, event=watch_event)
        if plan is not None and applied is not None:
            release(client, applied.functions, plan)
        return
    if watch:
        raise CliError("--watch deploys an app: run it in the app's folder or give --app DIR")
    if not path.exists():
        raise CliError(f"{path} does not exist")
    if path.suffix == ".py" and path.is_file():
        options = (("--name", name), ("--wsgi", wsgi), ("--asgi", asgi), ("--env", env))
        given = [option for option, value in options if value]
        if plan is not None:
            raise CliError("--publish applies to a function or an app with a pyfaas.toml")
        deploy_python_app(path, ApiClient(url, token), options_given=given)
        return
    fname = name or (path.stem if path.is_file() else path.resolve().name)
    config = {
        "name": fname,
        "handler": handler,
        "runtime": runtime,
        "memory_mb": memory,
        "timeout_s": timeout,
        "environment": _parse_env(env or []),
        "description": description,
    }
    config.update({k: v for k, v in (("wsgi", wsgi), ("asgi", asgi)) if v is not None})
    if secret:
        config["secrets"] = _parse_env(secret, "--secret", "VARIABLE=SECRET")
    isolation = (("ephemeral_storage_mb", ephemeral_storage), ("network", network), ("gpus", gpus))
    config.update({k: v for k, v in isolation if v is not None})
    client = ApiClient(url, token)
    result = upload_bundle(client, path, config, create_only=no_overwrite, console=err)
    state = "Created" if result["created"] else ("Updated" if result["changed"] else "Unchanged")
    err.print(
        f"[green]✓[/green] {state} [bold]{fname}[/bold] "
        f"(code {result['code_sha256'][:12]}, {result['code_size']:,} bytes"
        + (", with a dependency layer" if result.get("layer_sha256") else "")
        + ")"
    )
    if plan is not None:
        release(client, [fname], plan)


@app.command("config")
def configure(
    name: Annotated[str, typer.Argument(help="Function name")],
    reserved_concurrency: Annotated[
        int | None,
        typer.Option(help="Most invocations in flight at once; 0 stops all invocations"),
    ] = None,
    no_reserved_concurrency: Annotated[
        bool, typer.Option("--no-reserved-concurrency", help="Remove the reservation")
    ] = False,
    provisioned_concurrency: Annotated[
        int | None, typer.Option(help="Workers kept started and initialized")
    ] = None,
    concurrency_per_worker: Annotated[
        int | None, typer.Option(help="Invocations one worker serves at once (I/O-bound code)")
    ] = None,
    idle_timeout: Annotated[
        int | None, typer.Option(help="Seconds an idle worker is kept before it stops")
    ] = None,
    memory: Annotated[int | None, typer.Option(help="Memory in MB")] = None,
    timeout: Annotated[int | None, typer.Option(help="Timeout in seconds")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    price_plan: Annotated[
        str | None, typer.Option(help="The server's price plan its usage is costed with")
    ] = None,
    ephemeral_storage: EphemeralStorageOpt = None,
    network: NetworkOpt = None,
    gpus: GpusOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Change a function's configuration (concurrency, idle timeout, memory...), keeping its
    code."""
    changes: dict[str, Any] = {
        key: value
        for key, value in {
            "reserved_concurrency": reserved_concurrency,
            "provisioned_concurrency": provisioned_concurrency,
            "concurrency_per_worker": concurrency_per_worker,
            "idle_timeout_s": idle_timeout,
            "memory_mb": memory,
            "timeout_s": timeout,
            "description": description,
            "price_plan": price_plan,
            "ephemeral_storage_mb": ephemeral_storage,
            "network": network,
            "gpus": gpus,
        }.items()
        if value is not None
    }
    if no_reserved_concurrency:
        if reserved_concurrency is not None:
            raise CliError("give --reserved-concurrency or --no-reserved-concurrency, not both")
        changes["reserved_concurrency"] = None
    if not changes:
        raise CliError("nothing to change: give at least one option (see --help)")
    result = ApiClient(url, token).json("PATCH", f"/v1/functions/{name}", json=changes)
    state = "Updated" if result["changed"] else "Unchanged"
    err.print(
        f"[green]✓[/green] {state} [bold]{name}[/bold]: "
        + ", ".join(f"{k}={result[k]}" for k in changes)
    )


@app.command()
def invoke(
    name: Annotated[str, typer.Argument(help="Function name")],
    payload: Annotated[
        str | None,
        typer.Option("--payload", "-p", help="JSON event, @file, or - for stdin [default {}]"),
    ] = None,
    show_log: Annotated[bool, typer.Option("--log", "-l", help="Print the log tail")] = False,
    run_async: Annotated[
        bool, typer.Option("--async", help="Queue it (durably) and print its request id")
    ] = False,
    idempotency_key: Annotated[
        str | None, typer.Option(help="With --async: a key accepted once per function")
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Invoke a function and print its JSON result (with --async: its request id)."""
    body = _read_payload(payload)
    headers = {"Content-Type": "application/json"}
    if run_async:
        headers["X-Invocation-Type"] = "Event"
        if idempotency_key:
            headers["X-Idempotency-Key"] = idempotency_key
        accepted = ApiClient(url, token).request(
            "POST", f"/v1/functions/{name}/invoke", content=body, headers=headers
        )
        sys.stdout.write(accepted.json()["request_id"] + "\n")
        if accepted.headers.get("x-pyfaas-duplicate"):
            err.print("(already accepted with this idempotency key: nothing new was queued)")
        return
    if idempotency_key:
        raise CliError("--idempotency-key only applies with --async")
    if show_log:
        headers["X-Pyfaas-Log-Type"] = "Tail"
    response = ApiClient(url, token).request(
        "POST", f"/v1/functions/{name}/invoke", content=body, headers=headers
    )
    if show_log and "x-pyfaas-log-result" in response.headers:
        err.print(
            base64.b64decode(response.headers["x-pyfaas-log-result"]).decode(errors="replace"),
            end="",
            markup=False,
            highlight=False,
        )
    sys.stdout.write(response.text + "\n")
    if "x-pyfaas-function-error" in response.headers:
        detail = response.json()
        raise CliError(
            f"function error: {detail.get('errorType', '?')}: {detail.get('errorMessage', '')}"
            f" (request {response.headers.get('x-pyfaas-request-id')})"
        )


@app.command("ls")
def list_functions(
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """List functions."""
    functions = ApiClient(url, token).json("GET", "/v1/functions")["functions"]
    if as_json:
        sys.stdout.write(json.dumps(functions, indent=2) + "\n")
        return
    table = Table("name", "handler", "runtime", "memory", "timeout", "code", "updated")
    for f in functions:
        table.add_row(
            f["name"],
            web_app_label(f) or f["handler"],
            f["runtime"],
            f"{f['memory_mb']} MB",
            f"{f['timeout_s']} s",
            f["code_sha256"][:12],
            when(f["updated_at"]),
        )
    out.print(table if functions else "No functions yet: `pyfaas deploy PATH` creates one.")


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="Function name")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Show a function's configuration and workers."""
    info = ApiClient(url, token).json("GET", f"/v1/functions/{name}")
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return
    table = Table(show_header=False, box=None)
    for key in (
        "name",
        "handler",
        "runtime",
        "memory_mb",
        "timeout_s",
        "description",
        "reserved_concurrency",
        "provisioned_concurrency",
        "concurrency_per_worker",
        "idle_timeout_s",
        "wsgi",
        "asgi",
        "version",
        "code_sha256",
        "code_size",
        "layer_sha256",
        "price_plan",
    ):
        value = info.get(key)
        table.add_row(f"[bold]{key}[/bold]", "-" if value is None or value == "" else str(value))
    table.add_row(
        "[bold]environment[/bold]",
        ", ".join(f"{k}={v}" for k, v in info["environment"].items()) or "-",
    )
    table.add_row(
        "[bold]created / updated[/bold]",
        f"{when(info['created_at'])} / {when(info['updated_at'])}",
    )
    table.add_row(
        "[bold]workers[/bold]", ", ".join(f"{k}={v}" for k, v in info.get("stats", {}).items())
    )
    table.add_row(
        "[bold]schedules[/bold]",
        "\n".join(
            f"{s['id']} {s['expression']}" + ("" if s["enabled"] else " (disabled)")
            for s in info.get("schedules", [])
        )
        or "-",
    )
    out.print(table)


app.command("status")(invocation_status)
app.add_typer(dlq, name="dlq")
app.add_typer(url_app, name="url")
app.add_typer(schedule, name="schedule")
app.command("usage")(usage)
app.add_typer(sources, name="sources")
app.command("plan")(plan)
app.add_typer(token_app, name="token")
app.add_typer(secret_app, name="secret")
app.command("publish")(publish)
app.command("versions")(versions)
app.add_typer(alias_app, name="alias")
app.command("doctor")(doctor)


@app.command("rm")
def remove(
    name: Annotated[str, typer.Argument(help="Function name")],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Delete a function, its logs and its workers."""
    ApiClient(url, token).request("DELETE", f"/v1/functions/{name}")
    err.print(f"[green]✓[/green] Deleted [bold]{name}[/bold]")


app.command("logs")(logs)


def _read_payload(payload: str | None) -> bytes:
    if payload is None:
        return b"" if sys.stdin.isatty() else sys.stdin.buffer.read()
    if payload == "-":
        return sys.stdin.buffer.read()
    if payload.startswith("@"):
        try:
            return Path(payload[1:]).read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read payload file {payload[1:]}: {exc.strerror}") from None
    return payload.encode()


def _parse_env(pairs: list[str], flag: str = "--env", shape: str = "KEY=VALUE") -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"{flag} takes {shape}, got {pair!r}")
        env[key] = value
    return env


def main() -> None:
    """Entry point: run a command; errors become one line on stderr and exit status 1."""
    try:
        app(standalone_mode=False)
    except CliError as exc:
        err.print(Text(f"pyfaas: {exc.message}", style="red"))
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors (an unknown option, a missing
        # argument) arrive here in non-standalone mode: Typer's click says them in one line
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()
        sys.exit(getattr(exc, "exit_code", 2))
