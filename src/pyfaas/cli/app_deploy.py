"""Applying an app's plan, all or nothing: each step is a request to the server; if one
fails, what this deploy changed is put back as it was (the code and settings fetched
before), so the previous app keeps serving."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from pyfaas.cli.app_plan import Change, Plan, make_plan, read_function
from pyfaas.cli.app_spec import CodeSource, DeployedFunction, FunctionSpec
from pyfaas.cli.client import ApiClient, CliError
from pyfaas.cli.upload import upload_bundle


@dataclass(slots=True)
class AppliedPlan:
    """What applying a plan did: the functions whose code or settings went to the server,
    with the init duration the server measured when it imported new code."""

    redeployed: dict[str, float | None] = field(default_factory=dict)
    steps: int = 0
    functions: list[str] = field(default_factory=list)  # all the app's, deployed or not


# Where a function is declared, for messages: "pyfaas.toml:12".
Describe = Callable[[str], str]
# Each step prints its own line; an upload's progress bar would only add blank ones.
_QUIET = Console(quiet=True)


class PlanRunner:
    """Runs the steps of a plan against one server, keeping what rollback needs."""

    def __init__(self, client: ApiClient, console: Console, scratch: Path) -> None:
        self._client = client
        self._console = console
        self._scratch = scratch
        self._saved_code: dict[str, Path] = {}

    def apply(self, plan: Plan, describe: Describe | None = None) -> AppliedPlan:
        """Run every step of ``plan``; on a failure, roll back and raise CliError saying
        which step failed, why, and that the previous state was restored. Ctrl-C during a
        step rolls back too."""
        applied = AppliedPlan()
        touched: list[str] = []
        for change in plan.changes:
            if change.function not in touched:
                touched.append(change.function)
            try:
                self._save_code(change, plan.deployed)
                init_ms = self._run(change)
            except (CliError, KeyboardInterrupt) as exc:
                where = describe(change.function) if describe else change.function
                why = exc.message if isinstance(exc, CliError) else "interrupted"
                problem = f"{change.action} {change.label} ({where}) failed: {why}"
                restored = self.rollback(plan, touched)
                raise CliError(f"{problem}\n{restored}") from None
            applied.steps += 1
            if change.kind == "function" and change.action != "delete":
                applied.redeployed[change.function] = init_ms
            self._console.print(
                f"  [green]✓[/green] {change.action} {escape(change.label)}"
                + (
                    "" if change.kind == "function" else f" [dim](function {change.function})[/dim]"
                ),
                highlight=False,
            )
        return applied

    def _save_code(self, change: Change, deployed: dict[str, DeployedFunction]) -> None:
        """Before a step replaces or deletes a function's code, fetch that code."""
        replaces = change.kind == "function" and (change.upload or change.action == "delete")
        if not replaces or change.function not in deployed or change.function in self._saved_code:
            return
        response = self._client.request("GET", f"/v1/functions/{change.function}/code")
        target = self._scratch / f"{change.function}.zip"
        target.write_bytes(response.content)
        self._saved_code[change.function] = target

    def _run(self, change: Change) -> float | None:
        name, client = change.function, self._client
        if change.kind == "function":
            if change.action == "delete":
                client.request("DELETE", f"/v1/functions/{name}")
                return None
            assert change.spec is not None
            if not change.upload:
                fields = {k: v for k, v in change.spec.config.items() if k != "name"}
                result = client.json("PATCH", f"/v1/functions/{name}", json=fields)
                init: float | None = result.get("init_duration_ms")
                return init
            with change.spec.code.zipped() as bundle:
                result = upload_bundle(
                    client, bundle, change.spec.config, create_only=False, console=_QUIET
                )
            init = result.get("init_duration_ms")
            return init
        base = {
            "url": f"/v1/functions/{name}/url",
            "schedule": f"/v1/functions/{name}/schedules",
            "source": "/v1/event-source-mappings",
        }[change.kind]
        if change.kind == "url":
            method = {"create": "POST", "update": "PATCH", "delete": "DELETE"}[change.action]
            client.request(method, base, json=change.body)
        elif change.action == "create":
            client.request("POST", base, json=change.body)
        elif change.action == "update":
            client.request("PATCH", f"{base}/{change.ident}", json=change.body)
        else:
            client.request("DELETE", f"{base}/{change.ident}")
        return None

    def rollback(self, plan: Plan, touched: list[str]) -> str:
        """Put the ``touched`` functions back as ``plan.deployed`` had them (a function this
        deploy created is deleted). Best effort, step by step; returns what it did."""
        wanted = {
            name: self._snapshot(plan.deployed[name]) for name in touched if name in plan.deployed
        }
        try:
            now = {}
            for name in touched:
                record = self._client.optional_json("GET", f"/v1/functions/{name}")
                if record is not None:
                    now[name] = read_function(self._client, record)
            undo = make_plan(plan.app, wanted, now)
        except CliError as exc:
            return f"rollback failed: {exc.message}; check the app with `pyfaas plan`"
        failed = []
        for change in undo.changes:
            try:
                self._run(change)
            except CliError as exc:
                failed.append(f"{change.action} {change.label}: {exc.message}")
        if failed:
            return "rolled back, except: " + "; ".join(failed) + " (check with `pyfaas plan`)"
        return (
            f"rolled back {len(undo.changes)} change(s): the app is as it was before this deploy"
            if undo.changes
            else "nothing had changed yet: the app is as it was before this deploy"
        )

    def _snapshot(self, deployed: DeployedFunction) -> FunctionSpec:
        code = CodeSource(deployed.code_sha256, zip_path=self._saved_code.get(deployed.name))
        return FunctionSpec(
            name=deployed.name,
            config={"name": deployed.name, **deployed.config},
            code=code,
            url=deployed.url,
            schedules=tuple(s for _, s in deployed.schedules),
            sources=tuple(s for _, s in deployed.sources),
        )


def apply_plan(
    client: ApiClient, plan: Plan, console: Console, describe: Describe | None = None
) -> AppliedPlan:
    """Apply ``plan`` all or nothing (see PlanRunner). Raises CliError after a rollback."""
    with tempfile.TemporaryDirectory(prefix="pyfaas-rollback-") as scratch:
        return PlanRunner(client, console, Path(scratch)).apply(plan, describe)


def first_call(client: ApiClient, name: str, payload: bytes) -> str:
    """Invoke ``name`` once; describe how long it took and how it ended."""
    started = time.perf_counter()
    response = client.send(
        "POST",
        f"/v1/functions/{name}/invoke",
        content=payload,
        headers={"Content-Type": "application/json"},
    )
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code >= 400 and "x-pyfaas-function-error" not in response.headers:
        return f"first call {elapsed:.1f} ms, answered {response.status_code}"
    if "x-pyfaas-function-error" in response.headers:
        try:
            error_type = response.json().get("errorType", "error")
        except ValueError:
            error_type = "error"
        return f"first call {elapsed:.1f} ms, function error {error_type}"
    return f"first call {elapsed:.1f} ms, ok"
