"""What a deploy of an app will do: read what the server has, compare it with what is
wanted, and list the changes (functions and triggers to create, update, delete)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from rich.console import Console
from rich.markup import escape

from pyfaas.cli.app_spec import (
    CONFIG_KEYS,
    DeployedFunction,
    FunctionSpec,
    ScheduleSpec,
    SourceSpec,
    UrlSpec,
    app_of,
)
from pyfaas.cli.client import ApiClient, CliError

Action = Literal["create", "update", "delete"]
Kind = Literal["function", "url", "schedule", "source"]


@dataclass(frozen=True, slots=True)
class Change:
    """One step of a plan. ``spec`` is the wanted function (create/update of a function);
    ``body`` what is sent for a trigger; ``ident`` the schedule id or mapping uuid."""

    action: Action
    kind: Kind
    function: str
    label: str
    details: tuple[str, ...] = ()
    spec: FunctionSpec | None = None
    body: dict[str, Any] | None = None
    ident: str | None = None
    upload: bool = False  # a function update that sends code (else only its configuration)


@dataclass(frozen=True, slots=True)
class Plan:
    """The changes that turn the deployed state into the wanted one, in the order they
    run: functions (destinations first), then their triggers, then what goes away."""

    app: str
    changes: tuple[Change, ...]
    unchanged: tuple[str, ...] = ()
    deployed: dict[str, DeployedFunction] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.changes

    def functions(self, action: Action) -> int:
        """How many functions the plan will ``action``."""
        return sum(1 for c in self.changes if c.kind == "function" and c.action == action)


def fetch_deployed(
    client: ApiClient, app: str, names: Iterable[str]
) -> dict[str, DeployedFunction]:
    """The functions of ``app`` on the server and any other function called one of
    ``names``, with their triggers. Raises CliError (server unreachable)."""
    wanted = set(names)
    listed = client.json("GET", "/v1/functions")["functions"]
    found: dict[str, DeployedFunction] = {}
    for record in listed:
        name = record["name"]
        if name in wanted or app_of(record.get("description", "")) == app:
            found[name] = read_function(client, record)
    return found


def read_function(client: ApiClient, record: dict[str, Any]) -> DeployedFunction:
    """A listed function with its URL, schedules and event source mappings."""
    name = record["name"]
    detail = client.json("GET", f"/v1/functions/{name}")
    url = client.optional_json("GET", f"/v1/functions/{name}/url")
    mappings = client.json("GET", "/v1/event-source-mappings", params={"function": name})
    return DeployedFunction(
        name=name,
        config={k: detail.get(k) for k in CONFIG_KEYS},
        code_sha256=detail["code_sha256"],
        updated_at=detail["updated_at"],
        url=UrlSpec.from_server(url) if url is not None else None,
        schedules=tuple(
            (s["id"], ScheduleSpec.from_server(s)) for s in detail.get("schedules", [])
        ),
        sources=tuple(
            (m["uuid"], SourceSpec.from_server(m)) for m in mappings["event_source_mappings"]
        ),
    )


def make_plan(
    app: str,
    wanted: dict[str, FunctionSpec],
    deployed: dict[str, DeployedFunction],
) -> Plan:
    """The changes from ``deployed`` to ``wanted``: a deployed function not wanted goes.

    Raises CliError when a wanted name is taken by a function of no app or another app.
    """
    for name in wanted:
        owner = deployed[name].app if name in deployed else app
        if owner != app:
            raise CliError(
                f"a function named {name!r} exists and is "
                + (f"part of app {owner!r}" if owner else "not part of any app")
                + f"; rename it in the manifest or delete it (`pyfaas rm {name}`) first"
            )
    functions: list[Change] = []
    triggers: list[Change] = []
    removals: list[Change] = []
    unchanged: list[str] = []
    for name in _destinations_first(wanted):
        spec, current = wanted[name], deployed.get(name)
        step = _function_change(spec, current)
        if step is not None:
            functions.append(step)
        trigger_steps = _trigger_changes(spec, current)
        triggers.extend(trigger_steps)
        if step is None and not trigger_steps:
            unchanged.append(name)
    for name, current in sorted(deployed.items()):
        if name not in wanted:
            removals.extend(
                Change("delete", "source", name, spec.label(), ident=uuid)
                for uuid, spec in current.sources
            )
            removals.append(Change("delete", "function", name, name))
    return Plan(app, tuple(functions + triggers + removals), tuple(unchanged), deployed)


def _destinations_first(wanted: dict[str, FunctionSpec]) -> list[str]:
    """Names ordered so a function's destinations come before it (the manifest has no
    cycles); ties by name."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in wanted:
            return
        seen.add(name)
        for key in ("on_success", "on_failure"):
            target = wanted[name].config.get(key)
            if target:
                visit(target)
        order.append(name)

    for name in sorted(wanted):
        visit(name)
    return order


def _function_change(spec: FunctionSpec, current: DeployedFunction | None) -> Change | None:
    if current is None:
        return Change("create", "function", spec.name, spec.name, spec=spec, upload=True)
    details = [
        f"{key}: {_show(current.config.get(key))} -> {_show(spec.config[key])}"
        for key in CONFIG_KEYS
        if current.config.get(key) != spec.config[key]
    ]
    upload = current.code_sha256 != spec.code.sha256
    if upload:
        details.insert(0, f"code: {current.code_sha256[:12]} -> {spec.code.sha256[:12]}")
    if not details:
        return None
    return Change(
        "update", "function", spec.name, spec.name, tuple(details), spec=spec, upload=upload
    )


def _trigger_changes(spec: FunctionSpec, current: DeployedFunction | None) -> list[Change]:
    name = spec.name
    steps: list[Change] = []
    have_url = current.url if current else None
    if spec.url != have_url:
        if spec.url is None:
            assert have_url is not None
            steps.append(Change("delete", "url", name, have_url.label()))
        else:
            action: Action = "create" if have_url is None else "update"
            details = () if have_url is None else (f"{have_url.label()} -> {spec.url.label()}",)
            steps.append(
                Change(action, "url", name, spec.url.label(), details, body=spec.url.body())
            )
    steps.extend(_schedule_changes(name, spec.schedules, current.schedules if current else ()))
    steps.extend(_source_changes(name, spec.sources, current.sources if current else ()))
    return steps


def _schedule_changes(
    name: str, wanted: tuple[ScheduleSpec, ...], have: tuple[tuple[str, ScheduleSpec], ...]
) -> list[Change]:
    left = list(have)
    missing: list[ScheduleSpec] = []
    for schedule in wanted:  # the same schedule stays as it is (its next run included)
        same = next((item for item in left if item[1] == schedule), None)
        if same is None:
            missing.append(schedule)
        else:
            left.remove(same)
    steps: list[Change] = []
    for schedule in missing:  # one with the same expression is changed in place
        similar = next((item for item in left if item[1].expression == schedule.expression), None)
        if similar is None:
            steps.append(Change("create", "schedule", name, schedule.label(), body=schedule.body()))
            continue
        left.remove(similar)
        old = similar[1].body()
        diff = {k: v for k, v in schedule.body().items() if old[k] != v}
        details = tuple(f"{k}: {_show(old[k])} -> {_show(v)}" for k, v in diff.items())
        steps.append(
            Change(
                "update", "schedule", name, schedule.label(), details, body=diff, ident=similar[0]
            )
        )
    steps.extend(Change("delete", "schedule", name, s.label(), ident=sid) for sid, s in left)
    return steps


def _source_changes(
    name: str, wanted: tuple[SourceSpec, ...], have: tuple[tuple[str, SourceSpec], ...]
) -> list[Change]:
    left = list(have)
    steps: list[Change] = []
    for source in wanted:
        match = next((item for item in left if source.matches(item[1])), None)
        if match is None:
            steps.append(
                Change(
                    "create", "source", name, source.label(), body={**source.body, "function": name}
                )
            )
            continue
        left.remove(match)
        diff = source.changes(match[1])
        if diff:
            details = tuple(
                f"{k}: {_show(match[1].settings.get(k))} -> {_show(v)}" for k, v in diff.items()
            )
            steps.append(
                Change("update", "source", name, source.label(), details, body=diff, ident=match[0])
            )
    # Mappings that go are removed before new ones start (one consumer group, one reader).
    gone = [Change("delete", "source", name, s.label(), ident=uuid) for uuid, s in left]
    return gone + steps


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in value.items()) + "}"
    return "-" if value is None or value == "" else str(value)


_SYMBOLS = {"create": "[green]+[/green]", "update": "[yellow]~[/yellow]", "delete": "[red]-[/red]"}


def render_plan(plan: Plan, console: Console, source: str) -> None:
    """Print ``plan`` like a terraform plan: one line per change, what differs under it."""
    console.print(f"App [bold]{plan.app}[/bold] ({escape(source)}):")
    for change in plan.changes:
        indent = "  " if change.kind == "function" else "      "
        what = (
            f"function [bold]{change.function}[/bold]"
            if change.kind == "function"
            else f"{escape(change.label)} [dim](function {change.function})[/dim]"
        )
        console.print(f"{indent}{_SYMBOLS[change.action]} {change.action} {what}", highlight=False)
        for detail in change.details:
            console.print(f"{indent}      {detail}", markup=False, highlight=False)
    for name in plan.unchanged:
        console.print(f"  [dim]= function {name} (unchanged)[/dim]")
    created, updated, deleted = (plan.functions(a) for a in ("create", "update", "delete"))
    triggers = sum(1 for c in plan.changes if c.kind != "function")
    if plan.empty:
        console.print("No changes: the deployed app matches the manifest.")
    else:
        console.print(
            f"Plan: {created} to create, {updated} to update, {deleted} to delete "
            f"(functions); {triggers} trigger change(s)."
        )
