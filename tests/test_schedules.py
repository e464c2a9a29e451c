"""Schedules on a real server: rate and cron expressions, EventBridge's Scheduled Event, fixed
inputs, enable/disable, restarts and missed slots, two servers on one PostgreSQL, bad input."""

from __future__ import annotations

import calendar
import itertools
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ServerProcess, deploy, postgres_database, run_cli, unique, wait_for
from pyfaas.events.schedule_expressions import Rate, parse
from pyfaas.events.schedules import Due, due
from pyfaas.model import InvalidRequest
from pyfaas.model.schedules import FIRE_ONCE, SKIP, Schedule

# One JSON line per run (a single O_APPEND write: workers of two servers share the file);
# fails while $FAIL_FLAG exists.
RECORDER = {
    "handler.py": (
        "import json, os, time\n"
        "def handler(event, context):\n"
        "    line = {'id': context.aws_request_id, 'event': event, 'at': time.time()}\n"
        "    fd = os.open(os.environ['OUT'], os.O_WRONLY | os.O_APPEND | os.O_CREAT)\n"
        "    os.write(fd, (json.dumps(line) + '\\n').encode())\n"
        "    os.close(fd)\n"
        "    flag = os.environ.get('FAIL_FLAG')\n"
        "    if flag and os.path.exists(flag):\n"
        "        raise ValueError('failing on purpose')\n"
        "    return {}\n"
    )
}
FAST = {"PYFAAS_SCHEDULE_POLL_S": "0.1", "PYFAAS_RETRY_BASE_S": "0.2"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("schedules"), env=FAST).wait_ready()
    yield server
    server.stop()


@pytest.fixture()
def api(srv: ServerProcess) -> Iterator[httpx.Client]:
    with srv.client() as client:
        yield client


def recorder(api: httpx.Client, tmp_path: Path, name: str, **env: str) -> Path:
    out = tmp_path / f"{name}.jsonl"
    response = deploy(api, name, RECORDER, environment={"OUT": str(out), **env})
    assert response.status_code in (200, 201), response.text
    return out


def runs(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines()]


def epoch(iso: str) -> float:
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def slots(out: Path, schedule_id: str) -> list[float]:
    """Slot times of the Scheduled Events that ``schedule_id`` sent, in the order run."""
    return [
        epoch(r["event"]["time"])
        for r in runs(out)
        if r["event"].get("resources", [""])[0].endswith(f"/{schedule_id}")
    ]


def add(api: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    response = api.post(f"/v1/functions/{name}/schedules", json=fields)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def set_enabled(api: httpx.Client, name: str, schedule_id: str, enabled: bool) -> dict[str, Any]:
    response = api.patch(f"/v1/functions/{name}/schedules/{schedule_id}", json={"enabled": enabled})
    assert response.status_code == 200, response.text
    changed: dict[str, Any] = response.json()
    return changed


# --- firing -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_rate_schedule_sends_eventbridges_scheduled_event_once_per_slot(
    api: httpx.Client, tmp_path: Path
) -> None:
    name = unique("every-second")
    out = recorder(api, tmp_path, name)
    created = add(api, name, expression="rate(1 second)")
    assert created["enabled"] and created["missed_runs"] == "fire_once"
    assert created["input"] is None and created["timezone"] == "UTC"
    assert created["created_at"] < created["next_fire_at"] <= created["created_at"] + 1
    wait_for(lambda: len(runs(out)) >= 3, 15, "three runs")
    set_enabled(api, name, created["id"], False)
    fired = runs(out)
    times = [epoch(r["event"]["time"]) for r in fired]
    assert [b - a for a, b in itertools.pairwise(times)] == [1.0] * (len(times) - 1)
    for run in fired:
        event = run["event"]
        assert set(event) == {
            "version", "id", "detail-type", "source", "account", "time", "region",
            "resources", "detail",
        }  # fmt: skip
        assert event["version"] == "0"
        assert event["detail-type"] == "Scheduled Event"
        assert event["source"] == "aws.events"
        assert (event["account"], event["region"]) == ("000000000000", "us-east-1")
        assert event["resources"] == [f"arn:aws:events:us-east-1:000000000000:rule/{created['id']}"]
        assert event["detail"] == {}
        # Run at its slot, not long after.
        assert 0 <= run["at"] - epoch(event["time"]) < 2.0
    assert len({r["event"]["id"] for r in fired}) == len(fired)
    info = api.get(f"/v1/functions/{name}/schedules/{created['id']}").json()
    assert info["last_fired_at"] in times
    # Each run went through the async queue, under its request id.
    status = api.get(f"/v1/invocations/{info['last_request_id']}").json()
    assert status["function"] == name
    assert (
        status["idempotency_key"] == f"schedule:{created['id']}:{time_iso(info['last_fired_at'])}"
    )
    wait_for(lambda: api.get(f"/v1/invocations/{info['last_request_id']}").json()["status"]
             == "succeeded")  # fmt: skip
    assert info["last_request_id"] in {r["id"] for r in runs(out)}


def time_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.slow
def test_a_fixed_input_is_the_whole_event(api: httpx.Client, tmp_path: Path) -> None:
    name = unique("fixed-input")
    out = recorder(api, tmp_path, name)
    fixed = {"job": "nightly-report", "limit": 10, "tags": ["a", "b"], "nested": {"x": None}}
    created = add(api, name, expression="rate(1 second)", input=fixed)
    assert created["input"] == fixed
    wait_for(lambda: len(runs(out)) >= 2, 15, "two runs")
    set_enabled(api, name, created["id"], False)
    assert all(r["event"] == fixed for r in runs(out))


@pytest.mark.slow
def test_several_schedules_of_one_function_fire_on_their_own_and_rm_stops_one(
    api: httpx.Client, tmp_path: Path
) -> None:
    name = unique("several")
    out = recorder(api, tmp_path, name)
    one = add(api, name, expression="rate(1 second)", input={"from": "one"})
    two = add(api, name, expression="rate(2 seconds)", input={"from": "two"})
    three = add(api, name, expression="rate(1 second)")
    listed = api.get(f"/v1/functions/{name}/schedules").json()["schedules"]
    assert [s["id"] for s in listed] == [one["id"], two["id"], three["id"]]

    def count(source: str) -> int:
        return sum(r["event"].get("from") == source for r in runs(out))

    wait_for(lambda: count("one") >= 4 and count("two") >= 2 and len(slots(out, three["id"])) >= 4)
    assert api.delete(f"/v1/functions/{name}/schedules/{one['id']}").status_code == 204
    time.sleep(0.3)  # a run enqueued just before the delete may still arrive
    after_rm = count("one")
    wait_for(lambda: len(slots(out, three["id"])) >= after_rm + 3, 15, "the others go on")
    assert count("one") == after_rm
    assert api.get(f"/v1/functions/{name}/schedules/{one['id']}").status_code == 404
    for schedule in (two, three):
        set_enabled(api, name, schedule["id"], False)


@pytest.mark.slow
def test_a_disabled_schedule_does_not_fire_and_enabling_it_does_not_catch_up(
    api: httpx.Client, tmp_path: Path
) -> None:
    name = unique("toggled")
    out = recorder(api, tmp_path, name)
    created = add(api, name, expression="rate(1 second)", enabled=False)
    assert created["enabled"] is False and created["next_fire_at"] is None
    time.sleep(1.5)
    assert runs(out) == [], "created disabled: nothing runs"
    set_enabled(api, name, created["id"], True)
    wait_for(lambda: len(runs(out)) >= 2, 15, "runs once enabled")
    disabled = set_enabled(api, name, created["id"], False)
    assert disabled["next_fire_at"] is None
    time.sleep(0.3)
    disabled_at, before = time.time(), len(runs(out))
    time.sleep(2.5)
    assert len(runs(out)) == before, "nothing runs while disabled"
    enabled = set_enabled(api, name, created["id"], True)
    assert enabled["next_fire_at"] > time.time() - 0.5
    wait_for(lambda: len(runs(out)) >= before + 2, 15, "runs again")
    set_enabled(api, name, created["id"], False)
    # The slots that passed while it was disabled were not run late.
    assert not [s for s in slots(out, created["id"]) if disabled_at < s < disabled_at + 2.5]


@pytest.mark.slow
def test_a_failing_scheduled_run_is_retried_then_dead_lettered(
    api: httpx.Client, tmp_path: Path
) -> None:
    name = unique("fails-on-schedule")
    flag = tmp_path / "fail"
    flag.touch()
    out = recorder(api, tmp_path, name, FAIL_FLAG=str(flag))
    assert api.patch(f"/v1/functions/{name}", json={"maximum_retry_attempts": 1}).is_success
    created = add(api, name, expression="rate(1 second)")

    def dead() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = api.get("/v1/dlq", params={"function": name}).json()["events"]
        return found

    wait_for(lambda: len(dead()) >= 1, 20, "a dead scheduled event")
    set_enabled(api, name, created["id"], False)
    event = dead()[-1]
    assert event["idempotency_key"].startswith(f"schedule:{created['id']}:")
    assert (event["attempts"], event["condition"]) == (2, "RetriesExhausted")
    tries = [r for r in runs(out) if r["id"] == event["request_id"]]
    assert len(tries) == 2 and tries[0]["event"] == tries[1]["event"], "one event, retried"


@pytest.mark.slow
def test_deleting_a_function_deletes_its_schedules(api: httpx.Client, tmp_path: Path) -> None:
    name = unique("deleted")
    recorder(api, tmp_path, name)
    created = add(api, name, expression="rate(1 hour)")
    assert api.delete(f"/v1/functions/{name}").status_code == 204
    recorder(api, tmp_path, name)  # the same name again starts without schedules
    assert api.get(f"/v1/functions/{name}/schedules").json()["schedules"] == []
    gone = api.get(f"/v1/functions/{name}/schedules/{created['id']}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "schedule_not_found"


@pytest.mark.slow
def test_cron_schedules_say_when_they_fire_next_in_their_time_zone(api: httpx.Client) -> None:
    name = unique("cron")
    assert deploy(api, name, RECORDER, environment={"OUT": "/dev/null"}).is_success
    now = datetime.now(UTC)

    noon = add(api, name, expression="cron(0 12 * * ? *)")
    expected = now.replace(hour=12, minute=0, second=0, microsecond=0)
    if expected <= now:
        expected += timedelta(days=1)
    assert noon["next_fire_at"] == expected.timestamp()

    berlin = ZoneInfo("Europe/Berlin")
    local = add(api, name, expression="30 6 * * *", timezone="Europe/Berlin")
    at = datetime.fromtimestamp(local["next_fire_at"], berlin)
    assert (at.hour, at.minute, at.second) == (6, 30, 0)
    assert 0 < local["next_fire_at"] - now.timestamp() <= 86400 + 3600

    last_friday = add(api, name, expression="cron(15 10 ? * 6L *)")
    day = datetime.fromtimestamp(last_friday["next_fire_at"], UTC)
    assert (day.weekday(), day.hour, day.minute) == (calendar.FRIDAY, 10, 15)
    assert day.day + 7 > calendar.monthrange(day.year, day.month)[1], "the month's last Friday"

    second_tuesday = add(api, name, expression="cron(0 8 ? * 3#2 *)")
    day = datetime.fromtimestamp(second_tuesday["next_fire_at"], UTC)
    assert day.weekday() == calendar.TUESDAY and 8 <= day.day <= 14

    weekdays = add(api, name, expression="cron(0 9 ? * MON-FRI *)")
    day = datetime.fromtimestamp(weekdays["next_fire_at"], UTC)
    assert day.weekday() < 5 and day.hour == 9

    nearest_weekday = add(api, name, expression="cron(0 0 15W * ? *)")
    day = datetime.fromtimestamp(nearest_weekday["next_fire_at"], UTC)
    assert day.weekday() < 5 and 13 <= day.day <= 17
    assert api.delete(f"/v1/functions/{name}").status_code == 204


# --- API, CLI and `show` ------------------------------------------------------------------


@pytest.mark.slow
def test_show_and_the_cli_manage_a_functions_schedules(srv: ServerProcess, tmp_path: Path) -> None:
    name = unique("cli")
    with srv.client() as api:
        recorder(api, tmp_path, name)
    added = run_cli("schedule", "add", name, "rate(5 minutes)", "--input", '{"a": 1}', server=srv)
    assert added.returncode == 0, added.stderr
    schedule_id = added.stdout.strip()
    payload = tmp_path / "input.json"
    payload.write_text('{"b": 2}')
    second = run_cli(
        "schedule", "add", name, "cron(0 12 ? * MON *)", "--input", f"@{payload}",
        "--missed-runs", "skip", "--disabled", server=srv,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    second_id = second.stdout.strip()

    listed = run_cli("schedule", "ls", name, server=srv)
    assert listed.returncode == 0, listed.stderr
    assert schedule_id in listed.stdout and "rate(5 minutes)" in listed.stdout
    assert second_id in listed.stdout and "cron(0 12 ? * MON *)" in listed.stdout
    as_json = json.loads(run_cli("schedule", "ls", name, "--json", server=srv).stdout)
    assert [(s["id"], s["input"], s["enabled"], s["missed_runs"]) for s in as_json] == [
        (schedule_id, {"a": 1}, True, "fire_once"),
        (second_id, {"b": 2}, False, "skip"),
    ]
    shown = json.loads(run_cli("schedule", "show", name, schedule_id, server=srv).stdout)
    assert shown["expression"] == "rate(5 minutes)"

    assert run_cli("schedule", "disable", name, schedule_id, server=srv).returncode == 0
    assert run_cli("schedule", "enable", name, second_id, server=srv).returncode == 0
    as_json = json.loads(run_cli("schedule", "ls", name, "--json", server=srv).stdout)
    assert [s["enabled"] for s in as_json] == [False, True]

    show = run_cli("show", name, server=srv)
    assert show.returncode == 0, show.stderr
    assert f"{schedule_id} rate(5 minutes) (disabled)" in show.stdout
    assert f"{second_id} cron(0 12 ? * MON *)" in show.stdout
    with srv.client() as api:
        body = api.get(f"/v1/functions/{name}").json()
    assert [s["id"] for s in body["schedules"]] == [schedule_id, second_id]

    assert run_cli("schedule", "rm", name, schedule_id, server=srv).returncode == 0
    gone = run_cli("schedule", "show", name, schedule_id, server=srv)
    assert gone.returncode == 1 and "[schedule_not_found]" in gone.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rate(1 hours)"], "write rate(1 hour)"),
        (["rate(5 minutes)", "--input", "{nope"], "--input is not valid JSON"),
        (["rate(5 minutes)", "--missed-runs", "all"], "[invalid_missed_runs]"),
        (["rate(5 minutes)", "--timezone", "Mars/Olympus"], "[invalid_timezone]"),
    ],
)
def test_the_cli_explains_a_bad_schedule_without_a_traceback(
    srv: ServerProcess, tmp_path: Path, args: list[str], message: str
) -> None:
    name = unique("cli-bad")
    with srv.client() as api:
        recorder(api, tmp_path, name)
    result = run_cli("schedule", "add", name, *args, server=srv)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    with srv.client() as api:
        assert api.get(f"/v1/functions/{name}/schedules").json()["schedules"] == []


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        ({}, "invalid_schedule_expression", "needs an expression"),
        ({"expression": 5}, "invalid_schedule_expression", "must be a string"),
        ({"expression": "  "}, "invalid_schedule_expression", "must be a string"),
        ({"expression": "rate(" + "1" * 300 + " days)"}, "invalid_schedule_expression", "256"),
        ({"expression": "rate(1 hours)"}, "invalid_schedule_expression", "rate(1 hour)"),
        ({"expression": "rate(5 minute)"}, "invalid_schedule_expression", "rate(5 minutes)"),
        ({"expression": "rate(0 minutes)"}, "invalid_schedule_expression", "at least 1"),
        ({"expression": "rate(-5 minutes)"}, "invalid_schedule_expression", "at least 1"),
        ({"expression": "rate(1.5 hours)"}, "invalid_schedule_expression", "whole number"),
        ({"expression": "rate(2 weeks)"}, "invalid_schedule_expression", "unknown unit"),
        ({"expression": "rate(5)"}, "invalid_schedule_expression", "rate(VALUE UNIT)"),
        ({"expression": "rate(99999 days)"}, "invalid_schedule_expression", "100 years"),
        ({"expression": "rate 5 minutes"}, "invalid_schedule_expression", "parentheses"),
        ({"expression": "cron(0 12 * * *)"}, "invalid_schedule_expression", "6 fields"),
        ({"expression": "cron(0 12 * * ? * *)"}, "invalid_schedule_expression", "not 7"),
        ({"expression": "cron(0 12 * * * *)"}, "invalid_schedule_expression", "exactly one"),
        ({"expression": "cron(0 12 ? * ? *)"}, "invalid_schedule_expression", "exactly one"),
        ({"expression": "cron(? 12 * * ? *)"}, "invalid_schedule_expression", "not in minutes"),
        ({"expression": "cron(60 12 * * ? *)"}, "invalid_schedule_expression", "minutes: 0-59"),
        ({"expression": "cron(0 24 * * ? *)"}, "invalid_schedule_expression", "hours: 0-23"),
        ({"expression": "cron(0 0 32 * ? *)"}, "invalid_schedule_expression", "1-31"),
        ({"expression": "cron(0 0 1 13 ? *)"}, "invalid_schedule_expression", "month: 1-12"),
        ({"expression": "cron(0 0 1 FOO ? *)"}, "invalid_schedule_expression", "month name"),
        ({"expression": "cron(0 0 ? * 0 *)"}, "invalid_schedule_expression", "SUN-SAT"),
        ({"expression": "cron(0 0 ? * 8 *)"}, "invalid_schedule_expression", "SUN-SAT"),
        ({"expression": "cron(0 0 1 1 ? 2150)"}, "invalid_schedule_expression", "2099"),
        ({"expression": "cron(0 0 1 1 ? 2020)"}, "invalid_schedule_expression", "from now on"),
        ({"expression": "cron(0 0 30 2 ? *)"}, "invalid_schedule_expression", "from now on"),
        ({"expression": "cron(0 0 LW * ? *)"}, "invalid_schedule_expression", "LW"),
        ({"expression": "cron(0 0 1W,15 * ? *)"}, "invalid_schedule_expression", "only"),
        ({"expression": "cron(0 0 ? * 2#1,3 *)"}, "invalid_schedule_expression", "only"),
        ({"expression": "cron(0 0 ? * 2#6 *)"}, "invalid_schedule_expression", "1-5"),
        ({"expression": "cron(*/0 * * * ? *)"}, "invalid_schedule_expression", "at least 1"),
        ({"expression": "cron(H * * * ? *)"}, "invalid_schedule_expression", "not a number"),
        ({"expression": "cron(5L * * * ? *)"}, "invalid_schedule_expression", "not allowed"),
        ({"expression": "0 12 * * ?"}, "invalid_schedule_expression", "EventBridge"),
        ({"expression": "0 12 L * *"}, "invalid_schedule_expression", "EventBridge"),
        ({"expression": "0 12 * * 1#2"}, "invalid_schedule_expression", "EventBridge"),
        ({"expression": "0 12 * *"}, "invalid_schedule_expression", "4 fields"),
        ({"expression": "every day"}, "invalid_schedule_expression", "rate(5 minutes)"),
        ({"expression": "@fortnightly"}, "invalid_schedule_expression", "1 fields"),
        ({"expression": "rate(1 hour)", "timezone": "Mars/Olympus"}, "invalid_timezone", "IANA"),
        (
            {"expression": "rate(1 hour)", "timezone": "../../etc/passwd"},
            "invalid_timezone",
            "IANA",
        ),
        ({"expression": "rate(1 hour)", "timezone": 2}, "invalid_timezone", "IANA"),
        ({"expression": "rate(1 hour)", "timezone": "Europe/" * 50}, "invalid_timezone", "IANA"),
        ({"expression": "rate(1 hour)", "missed_runs": "all"}, "invalid_missed_runs", "fire_once"),
        ({"expression": "rate(1 hour)", "enabled": "yes"}, "invalid_type", "true or false"),
        ({"expression": "rate(1 hour)", "colour": "red"}, "unknown_field", "colour"),
    ],
)
def test_a_bad_schedule_is_a_400_that_says_what_to_fix_and_stores_nothing(
    api: httpx.Client, body: dict[str, Any], code: str, says: str
) -> None:
    name = unique("bad")
    assert deploy(api, name, RECORDER, environment={"OUT": "/dev/null"}).is_success
    response = api.post(f"/v1/functions/{name}/schedules", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code and says in error["message"], error
    assert api.get(f"/v1/functions/{name}/schedules").json()["schedules"] == []


@pytest.mark.slow
def test_bodies_that_are_not_schedules_and_unknown_names_are_clear_errors(
    api: httpx.Client,
) -> None:
    name = unique("bad-bodies")
    assert deploy(api, name, RECORDER, environment={"OUT": "/dev/null"}).is_success
    path = f"/v1/functions/{name}/schedules"
    for raw in (b"{nope", b"[1, 2]", b""):
        response = api.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
    huge = {"expression": "rate(1 hour)", "input": {"blob": "x" * 300_000}}
    response = api.post(path, json=huge)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"
    assert "input" in response.json()["error"]["message"]
    too_big_body = api.post(path, content=b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert too_big_body.status_code == 413
    assert api.get(path).json()["schedules"] == []

    missing = api.post(
        "/v1/functions/no-such-function/schedules", json={"expression": "rate(1 hour)"}
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "function_not_found"
    assert api.get("/v1/functions/no-such-function/schedules").status_code == 404
    for method in ("GET", "PATCH", "DELETE"):
        response = api.request(method, f"{path}/nope", json={} if method == "PATCH" else None)
        assert response.status_code == 404, (method, response.text)
        assert response.json()["error"]["code"] == "schedule_not_found"
        assert "pyfaas schedule ls" in response.json()["error"]["message"]


@pytest.mark.slow
def test_a_bad_change_leaves_the_schedule_as_it_was(api: httpx.Client) -> None:
    name = unique("bad-patch")
    assert deploy(api, name, RECORDER, environment={"OUT": "/dev/null"}).is_success
    created = add(api, name, expression="rate(1 hour)", input={"keep": True})
    path = f"/v1/functions/{name}/schedules/{created['id']}"
    for change, code in [
        ({"expression": "rate(1 hours)", "enabled": False}, "invalid_schedule_expression"),
        ({"timezone": "Nowhere/Special", "input": {"new": 1}}, "invalid_timezone"),
        ({"missed_runs": "sometimes", "enabled": False}, "invalid_missed_runs"),
        ({"enabled": 1}, "invalid_type"),
        ({"id": "mine"}, "unknown_field"),
    ]:
        response = api.patch(path, json=change)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == code
    assert api.get(path).json() == {**created, "next_fire_at": created["next_fire_at"]}
    changed = api.patch(path, json={"expression": "cron(0 12 * * ? *)", "missed_runs": "skip"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["expression"] == "cron(0 12 * * ? *)"
    assert changed.json()["missed_runs"] == "skip" and changed.json()["input"] == {"keep": True}
    assert datetime.fromtimestamp(changed.json()["next_fire_at"], UTC).hour == 12


# --- restarts, missed slots, several servers ------------------------------------------------


def wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def same_grid(api: httpx.Client, name: str, first: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Add a schedule whose slots are those of ``first`` (rates count from the second they
    were created in: try again in the next second if it was missed)."""
    for _ in range(5):
        created = add(api, name, **fields)
        if created["next_fire_at"] == first["next_fire_at"]:
            return created
        assert api.delete(f"/v1/functions/{name}/schedules/{created['id']}").is_success
    raise AssertionError("could not create two schedules within one second")


@pytest.mark.slow
def test_schedules_survive_a_restart_and_missed_slots_follow_their_policy(tmp_path: Path) -> None:
    period = 3.0
    home, out = tmp_path / "home", tmp_path / "runs.jsonl"
    # A poll of 0.5 s allows runs to be 1.5 s late before they count as missed.
    env = {**FAST, "PYFAAS_SCHEDULE_POLL_S": "0.5"}
    first = ServerProcess(home, env=env).wait_ready()
    try:
        with first.client() as api:
            assert deploy(api, "tick", RECORDER, environment={"OUT": str(out)}).is_success
            once = add(api, "tick", expression="rate(3 seconds)")
            skip = same_grid(api, "tick", once, expression="rate(3 seconds)", missed_runs="skip")
        ids = (once["id"], skip["id"])
        wait_for(lambda: all(slots(out, i) for i in ids), 20, "a run of each before the stop")
    finally:
        first.stop()
    last = slots(out, once["id"])[-1]
    assert slots(out, skip["id"])[-1] == last
    wait_until(last + 3 * period)  # down for at least two slots
    restarted_at = time.time()
    second = ServerProcess(home, env=env).wait_ready()
    try:
        ready = time.time()
        wait_for(lambda: len(slots(out, skip["id"])) >= 3, 30, "runs after the restart")
        with second.client() as api:
            listed = api.get("/v1/functions/tick/schedules").json()["schedules"]
            assert [s["id"] for s in listed] == list(ids), "schedules survive the restart"
    finally:
        second.stop()

    after = {i: [s for s in slots(out, i) if s > last] for i in ids}
    for i in ids:
        assert all(b - a == period for a, b in itertools.pairwise(after[i])), after[i]
    # fire_once: the slots missed while down became one run, for the latest of them.
    caught_up = after[once["id"]][0]
    assert caught_up - last >= 2 * period, "the earlier missed slots did not run"
    assert restarted_at - period < caught_up <= ready, "one run for a slot before the restart"
    # skip: none of the missed slots ran; its first run is the next slot on time.
    assert after[skip["id"]][0] == caught_up + period
    assert after[skip["id"]][0] > restarted_at


@pytest.mark.slow
@pytest.mark.postgres
def test_two_servers_on_one_postgres_fire_each_slot_once(tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    with postgres_database() as url:
        # A PYFAAS_HOME each, as on two machines: code reaches the second through the database.
        env = {**FAST, "PYFAAS_DATABASE_URL": url}
        servers = [ServerProcess(tmp_path / f"server{i}", env=env).wait_ready() for i in range(2)]
        try:
            with servers[0].client() as api:
                assert deploy(api, "shared", RECORDER, environment={"OUT": str(out)}).is_success
                created = add(api, "shared", expression="rate(1 second)")
            wait_for(lambda: len(runs(out)) >= 6, 30, "six slots")
            with servers[1].client() as api:  # either server manages it
                set_enabled(api, "shared", created["id"], False)
            time.sleep(1.0)
            fired = slots(out, created["id"])
            assert len(fired) == len(set(fired)), "no slot ran twice"
            fired.sort()
            assert fired == [fired[0] + k for k in range(len(fired))], "no slot was lost"
            with servers[0].client() as api:
                events = api.get("/v1/invocations", params={"function": "shared"}).json()
            keys = [e["idempotency_key"] for e in events["invocations"]]
            assert len(keys) == len(set(keys)) == len(fired)
        finally:
            for server in servers:
                server.stop()
        logs = [server.log_path.read_text(errors="replace") for server in servers]
        assert all("Traceback" not in log for log in logs), logs
        # Both servers fired the slots; the queue kept one event of each.
        counts = [
            [
                int(n)
                for n in re.findall(r"scheduler stopped: (\d+) slots queued here, (\d+)", log)[0]
            ]
            for log in logs
        ]
        assert sum(queued for queued, _ in counts) == len(fired), counts
        assert sum(already for _, already in counts) >= len(fired) - 2, counts


# --- the rules, without a server -----------------------------------------------------------


def schedule_at(handled_until: float, anchor: float, missed_runs: str) -> Schedule:
    return Schedule(
        id="s", function="f", expression="rate(1 minute)", timezone="UTC", input=None,
        enabled=True, missed_runs=missed_runs, anchor=anchor, handled_until=handled_until,
        created_at=anchor, updated_at=anchor,
    )  # fmt: skip


@given(
    period=st.integers(1, 3600),
    anchor=st.integers(0, 2_000_000_000),
    handled=st.floats(0, 100_000),
    waited=st.floats(0, 100_000),
    up_for=st.floats(0, 100_000),
    grace=st.floats(0.25, 10),
    policy=st.sampled_from([FIRE_ONCE, SKIP]),
)
@settings(deadline=None)  # pure arithmetic; a busy machine's pauses are not its failures
def test_due_fires_on_time_slots_and_applies_the_policy_to_missed_ones(
    period: int,
    anchor: int,
    handled: float,
    waited: float,
    up_for: float,
    grace: float,
    policy: str,
) -> None:
    rate = Rate(period)
    handled_until = anchor + handled
    now = handled_until + waited
    started_at = now - up_for
    pending = [
        anchor + k * period
        for k in range(int(handled // period), int((handled + waited) // period) + 2)
        if handled_until < anchor + k * period <= now and k >= 1
    ]
    decision = due(
        rate, schedule_at(handled_until, anchor, policy), now, grace_s=grace, started_at=started_at
    )
    if not pending:
        assert decision is None
        return
    latest = pending[-1]
    late, before_start = now - latest > grace, latest < started_at
    missed = len(pending) > 1 or late or before_start
    if not missed or policy == FIRE_ONCE:
        assert decision == Due(fire=latest, until=latest, missed=missed), "one run, the latest"
    elif not late and not before_start:
        assert decision == Due(fire=latest, until=latest, missed=True), "older ones skipped"
    elif not late:
        assert decision is None, "came due just before the start: another server may fire it"
    else:
        assert decision == Due(fire=None, until=latest, missed=True), "skipped"


@given(value=st.integers(1, 500), unit=st.sampled_from(["second", "minute", "hour", "day"]))
def test_rates_take_the_singular_for_one_and_the_plural_otherwise(value: int, unit: str) -> None:
    right = unit if value == 1 else unit + "s"
    wrong = unit + "s" if value == 1 else unit
    seconds = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}[unit]
    assert parse(f"rate({value} {right})") == Rate(value * seconds)
    with pytest.raises(InvalidRequest) as refused:
        parse(f"rate({value} {wrong})")
    assert refused.value.code == "invalid_schedule_expression"
    assert f"rate({value} {right})" in refused.value.message


@given(day=st.integers(1, 7), hour=st.integers(0, 23), start=st.integers(0, 10**9))
def test_eventbridge_day_of_week_counts_from_sunday_as_1(day: int, hour: int, start: int) -> None:
    after = 1_700_000_000 + start
    slot = parse(f"cron(0 {hour} ? * {day} *)").next_after(after, 0)
    assert slot is not None
    fired = datetime.fromtimestamp(slot, UTC)
    assert (fired.isoweekday() % 7 + 1, fired.hour, fired.minute) == (day, hour, 0)
    assert 0 < slot - after <= 7 * 86400
    standard = parse(f"0 {hour} * * {day - 1}").next_after(after, 0)
    assert standard == slot, "the same day in 5-field cron (0 = Sunday)"


@pytest.mark.parametrize("poll", ["0", "61", "soon"])
def test_a_bad_schedule_poll_stops_the_server_before_it_starts(tmp_path: Path, poll: str) -> None:
    result = run_cli(
        "serve", "--home", str(tmp_path), env={"PYFAAS_SCHEDULE_POLL_S": poll}, timeout=60
    )
    assert result.returncode == 1
    assert "schedule_poll_s" in result.stderr or "soon" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
