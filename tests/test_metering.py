"""Metering: one usage record per invocation that ran, costed from the server's price plans."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ServerProcess, deploy, postgres_database, run_cli, unique, wait_for
from pyfaas.metering.prices import PriceBook, cost, gb_seconds
from pyfaas.model import ConfigurationError, PricePlan, UsageRecord
from pyfaas.server import ServerConfig
from pyfaas.store import open_store

HANDLER = """
import os, time

def handler(event, context):
    mode = event.get("mode", "ok")
    if mode == "sleep":
        time.sleep(event["ms"] / 1000)
    elif mode == "spin":
        end = time.process_time() + event["ms"] / 1000
        while time.process_time() < end:
            pass
    elif mode == "raise":
        raise ValueError("as asked")
    elif mode == "crash":
        os._exit(3)
    return {"mode": mode}
"""

PRICES = """
[prices.eur]
per_gb_second = "0.00002"
per_million_requests = 0.25
currency = "EUR"
"""


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with a second price plan (EUR) and async retries without delay."""
    home = tmp_path_factory.mktemp("metering")
    config = home / "pyfaas.toml"
    config.write_text(PRICES)
    srv = ServerProcess(
        home,
        "--config",
        str(config),
        env={"PYFAAS_RETRY_BASE_S": "0", "PYFAAS_IDLE_TIMEOUT_S": "60"},
    ).wait_ready()
    yield srv
    srv.stop()


@pytest.fixture()
def client(metered: ServerProcess) -> Iterator[httpx.Client]:
    with metered.client() as c:
        yield c


def invoke(client: httpx.Client, name: str, event: dict[str, Any]) -> httpx.Response:
    response = client.post(f"/v1/functions/{name}/invoke", json=event)
    assert response.status_code == 200, response.text
    return response


def usage(client: httpx.Client, **params: str) -> dict[str, Any]:
    response = client.get("/v1/usage", params=params)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def only_row(client: httpx.Client, name: str, **params: str) -> dict[str, Any]:
    rows = usage(client, function=name, **params)["rows"]
    assert len(rows) == 1, rows
    row: dict[str, Any] = rows[0]
    return row


def billed_from_logs(client: httpx.Client, name: str) -> list[int]:
    """The Billed Duration of every REPORT line in ``name``'s logs."""
    records = client.get(f"/v1/functions/{name}/logs", params={"limit": 1000}).json()["records"]
    text = "".join(r["text"] for r in records)
    return [int(ms) for ms in re.findall(r"Billed Duration: (\d+) ms", text)]


def test_every_invocation_that_ran_has_one_usage_record_billed_as_its_report_line(
    client: httpx.Client,
) -> None:
    name = unique("metered")
    assert deploy(client, name, {"handler.py": HANDLER}, timeout_s=1,
                  maximum_retry_attempts=0).status_code in (200, 201)  # fmt: skip
    for _ in range(3):
        invoke(client, name, {"mode": "sleep", "ms": 5})
    for _ in range(2):
        assert "x-pyfaas-function-error" in invoke(client, name, {"mode": "raise"}).headers
    assert "x-pyfaas-function-error" in invoke(client, name, {"mode": "sleep", "ms": 3000}).headers
    assert "x-pyfaas-function-error" in invoke(client, name, {"mode": "crash"}).headers
    # Two async deliveries go through the same path: one succeeds, one fails for good.
    ids = [
        client.post(
            f"/v1/functions/{name}/invoke", json=event, headers={"X-Invocation-Type": "Event"}
        ).json()["request_id"]
        for event in ({"mode": "ok"}, {"mode": "raise"})
    ]

    def finished() -> bool:
        statuses = [client.get(f"/v1/invocations/{i}").json()["status"] for i in ids]
        return statuses == ["succeeded", "dead"]

    wait_for(finished, what="both async events finished")

    row = only_row(client, name)
    billed = billed_from_logs(client, name)
    assert len(billed) == 9
    assert row["invocations"] == 9
    assert (row["successes"], row["errors"], row["timeouts"], row["crashes"]) == (4, 3, 1, 1)
    assert row["billed_ms"] == sum(billed)
    assert row["billed_ms"] >= 3 * 5 + 1000, "the timeout is billed for the whole timeout"
    assert row["cold_starts"] >= 2, "the deploy's worker died with the timeout, then the crash"
    assert row["max_memory_mb"] > 0


def test_cost_is_gb_seconds_times_price_plus_requests_exactly(client: httpx.Client) -> None:
    name = unique("costed")
    deploy(client, name, {"handler.py": HANDLER}, memory_mb=256)
    for _ in range(3):
        invoke(client, name, {"mode": "sleep", "ms": 10})
    row = only_row(client, name)
    assert row["invocations"] == 3
    assert 30 <= row["billed_ms"] < 3 * 200
    # By hand: billed seconds x 0.25 GB x $0.0000166667, plus 3 x $0.20 per million.
    gb_s = Decimal(row["billed_ms"]) / 1000 * Decimal(256) / 1024
    expected = gb_s * Decimal("0.0000166667") + 3 * Decimal("0.20") / 1_000_000
    assert Decimal(row["gb_seconds"]) == gb_s
    assert Decimal(row["cost"]) == expected
    assert row["currency"] == "USD"


def test_the_price_arithmetic_matches_hand_computed_values() -> None:
    lambda_x86 = PriceBook().default
    # 3 calls of 10 ms at 128 MB: 0.00375 GB-s x 0.0000166667 + 3 x 0.0000002.
    assert gb_seconds(3 * 10 * 128) == Decimal("0.00375")
    assert cost(lambda_x86, 3 * 10 * 128, 3) == Decimal("0.000000662500125")
    # One million 1 s calls at 1 GB: 1e6 GB-s x 0.0000166667 + $0.20.
    assert cost(lambda_x86, 1_000_000 * 1000 * 1024, 1_000_000) == Decimal("16.8667")
    eur = PricePlan.parse("eur", {"per_gb_second": 0.00002, "currency": "eur"})
    assert (eur.per_gb_second, eur.per_million_requests, eur.currency) == (
        Decimal("0.00002"),
        Decimal("0.20"),
        "EUR",
    )
    assert cost(eur, 2048 * 1000, 0) == Decimal("0.00004")  # 2 GB-s


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"per_gb_second": "cheap"}, "per_gb_second must be a number"),
        ({"per_gb_second": -1}, "must be 0 or more"),
        ({"per_million_requests": "NaN"}, "must be 0 or more"),
        ({"currency": "US$"}, "currency"),
        ({"per_request": 1}, "unknown field(s) per_request"),
    ],
)
def test_a_bad_price_plan_is_a_configuration_error_naming_the_field(
    fields: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(fragment)):
        PricePlan.parse("bad", fields)


def test_idle_time_costs_nothing_whatever_warm_workers_do(client: httpx.Client) -> None:
    name = unique("idle")
    deploy(client, name, {"handler.py": HANDLER}, provisioned_concurrency=2)
    for _ in range(3):
        invoke(client, name, {"mode": "sleep", "ms": 10})
    before = only_row(client, name)
    time.sleep(1.5)  # two warm workers sit idle
    after = only_row(client, name)
    assert after == before
    assert before["invocations"] == 3 and 30 <= before["billed_ms"] < 3 * 200
    workers = client.get(f"/v1/functions/{name}").json()["stats"]
    assert workers["workers_idle"] >= 2, "the workers were there all along"


def test_cpu_time_is_the_workers_own_during_the_call(client: httpx.Client) -> None:
    spinning, sleeping = unique("spin"), unique("sleep")
    for name in (spinning, sleeping):
        deploy(client, name, {"handler.py": HANDLER})
    invoke(client, spinning, {"mode": "spin", "ms": 200})
    invoke(client, sleeping, {"mode": "sleep", "ms": 200})
    spun, slept = only_row(client, spinning), only_row(client, sleeping)
    assert spun["cpu_ms"] >= 190
    assert slept["cpu_ms"] < 50 <= 190 <= slept["duration_ms"]


def test_a_function_on_another_price_plan_is_costed_in_its_currency(
    client: httpx.Client,
) -> None:
    usd, eur = unique("usd"), unique("eur")
    deploy(client, usd, {"handler.py": HANDLER})
    assert deploy(client, eur, {"handler.py": HANDLER}, price_plan="eur").status_code in (200, 201)
    assert client.get(f"/v1/functions/{eur}").json()["price_plan"] == "eur"
    invoke(client, usd, {})
    invoke(client, eur, {})
    row = only_row(client, eur)
    gb_s = Decimal(row["billed_ms"]) / 1000 * Decimal(128) / 1024
    assert row["currency"] == "EUR"
    assert Decimal(row["cost"]) == gb_s * Decimal("0.00002") + Decimal("0.25") / 1_000_000
    report = usage(client, start="1h", group_by="day")
    currencies = {r["currency"] for r in report["rows"]}
    assert currencies == {"USD", "EUR"}, "amounts in different currencies are never added up"
    assert {t["currency"] for t in report["totals"]} == {"USD", "EUR"}


def test_an_unknown_price_plan_is_refused_and_nothing_is_written(client: httpx.Client) -> None:
    name = unique("unplanned")
    response = deploy(client, name, {"handler.py": HANDLER}, price_plan="gold")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_price_plan"
    assert "default, eur" in response.json()["error"]["message"]
    assert client.get(f"/v1/functions/{name}").status_code == 404
    deploy(client, name, {"handler.py": HANDLER})
    patched = client.patch(f"/v1/functions/{name}", json={"price_plan": "gold"})
    assert patched.status_code == 400 and patched.json()["error"]["code"] == "invalid_price_plan"
    assert client.get(f"/v1/functions/{name}").json()["price_plan"] is None
    assert client.patch(f"/v1/functions/{name}", json={"price_plan": "eur"}).status_code == 200


def test_usage_groups_by_version_day_and_hour_and_filters_by_range(client: httpx.Client) -> None:
    name = unique("grouped")
    deploy(client, name, {"handler.py": HANDLER})
    before = time.time()
    for _ in range(2):
        invoke(client, name, {})
    today = datetime.now(UTC).date().isoformat()
    by_day = only_row(client, name, group_by="day,function")
    assert by_day["day"] == today and by_day["function"] == name and by_day["invocations"] == 2
    by_hour = only_row(client, name, group_by="hour")
    assert by_hour["hour"].startswith(today) and by_hour["invocations"] == 2
    assert "function" not in by_hour
    by_version = only_row(client, name, group_by="version")
    assert (by_version["function"], by_version["version"]) == (name, "$LATEST")
    assert usage(client, function=name, end=str(before - 1))["rows"] == []
    assert usage(client, function=name, start=str(before - 1))["rows"][0]["invocations"] == 2


def test_usage_comes_as_csv(client: httpx.Client) -> None:
    name = unique("csv")
    deploy(client, name, {"handler.py": HANDLER})
    invoke(client, name, {})
    response = client.get("/v1/usage", params={"function": name, "format": "csv"})
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 1
    assert rows[0]["function"] == name and rows[0]["invocations"] == "1"
    assert rows[0]["currency"] == "USD" and Decimal(rows[0]["cost"]) > 0


@pytest.mark.parametrize(
    ("params", "code", "fragment"),
    [
        ({"start": "yesterday"}, "invalid_range", "ISO 8601"),
        ({"start": "2026-11-25", "end": "2026-11-24"}, "invalid_range", "must come before"),
        ({"end": "2026-13-01"}, "invalid_range", "not a time"),
        ({"group_by": "week"}, "invalid_group_by", "'week' is not one of"),
        ({"group_by": "day,hour"}, "invalid_group_by", "not both"),
        ({"group_by": "function,function"}, "invalid_group_by", "twice"),
        ({"format": "xml"}, "invalid_format", "json, csv"),
        ({"function": "no/such"}, "invalid_name", "invalid function name"),
        ({"from": "2026-11-01"}, "unknown_field", "known: start"),
    ],
)
def test_bad_usage_queries_are_400_with_a_stable_code(
    client: httpx.Client, params: dict[str, str], code: str, fragment: str
) -> None:
    response = client.get("/v1/usage", params=params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert fragment in error["message"]


def test_pyfaas_usage_prints_a_table_json_and_csv(
    client: httpx.Client, metered: ServerProcess
) -> None:
    name = unique("cli")
    deploy(client, name, {"handler.py": HANDLER})
    invoke(client, name, {})
    table = run_cli("usage", "--function", name, "--since", "1h", server=metered)
    assert table.returncode == 0, table.stderr
    assert name in table.stdout and "USD" in table.stdout
    assert "Total: 1 invocations" in table.stderr
    as_json = run_cli("usage", "-f", name, "--format", "json", "--by", "day", server=metered)
    assert json.loads(as_json.stdout)["rows"][0]["invocations"] == 1
    as_csv = run_cli("usage", "-f", name, "--format", "csv", server=metered)
    assert next(csv.DictReader(io.StringIO(as_csv.stdout)))["function"] == name


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--by", "week"), "[invalid_group_by]"),
        (("--since", "last tuesday"), "[invalid_range]"),
        (("--format", "xml"), "--format 'xml' is not one of table, json, csv"),
    ],
)
def test_pyfaas_usage_reports_bad_options_in_one_line(
    metered: ServerProcess, args: tuple[str, ...], fragment: str
) -> None:
    result = run_cli("usage", *args, server=metered)
    assert result.returncode == 1
    assert fragment in result.stderr and "Traceback" not in result.stderr


def test_a_bad_price_plan_in_pyfaas_toml_stops_serve_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "pyfaas.toml"
    config.write_text('[prices.default]\nper_gb_second = "free"\n')
    result = run_cli("serve", "--config", str(config), "--home", str(tmp_path / "home"))
    assert result.returncode == 1
    assert "price plan 'default': per_gb_second must be a number" in result.stderr
    assert "Traceback" not in result.stderr


def test_with_metering_off_usage_is_unavailable_and_nothing_is_recorded(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "home", env={"PYFAAS_METERING": "false"}).wait_ready()
    try:
        with srv.client() as c:
            name = unique("unmetered")
            deploy(c, name, {"handler.py": HANDLER})
            invoke(c, name, {})
            response = c.get("/v1/usage")
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "service_unavailable"
            assert "metering is off" in response.json()["error"]["message"]
            assert c.get("/metrics").status_code == 200
    finally:
        srv.stop()
    with sqlite3.connect(tmp_path / "home" / "pyfaas.db") as db:
        assert db.execute("SELECT count(*) FROM usage_records").fetchone() == (0,)


def test_pyfaas_config_sets_a_price_plan_and_refuses_an_unknown_one(
    client: httpx.Client, metered: ServerProcess
) -> None:
    name = unique("planned")
    deploy(client, name, {"handler.py": HANDLER})
    ok = run_cli("config", name, "--price-plan", "eur", server=metered)
    assert ok.returncode == 0, ok.stderr
    assert client.get(f"/v1/functions/{name}").json()["price_plan"] == "eur"
    bad = run_cli("config", name, "--price-plan", "gold", server=metered)
    assert bad.returncode == 1 and "[invalid_price_plan]" in bad.stderr


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_usage_sums_by_hour_day_and_version_on_both_databases(
    db: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'usage.db'}"
        if db == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    day = datetime(2026, 11, 24, tzinfo=UTC).timestamp()

    def rec(at: float, version: str, billed: int, outcome: str = "success") -> UsageRecord:
        return UsageRecord(
            function="f", version=version, request_id=f"r{at}{version}", started_at=at,
            duration_us=billed * 1000 - 500, billed_ms=billed, memory_mb=256, max_memory_mb=20,
            cpu_us=None if outcome == "crash" else 100, init_us=None, outcome=outcome,
        )  # fmt: skip

    records = [
        rec(day + 10, "1", 5),
        rec(day + 3600 + 1, "1", 7, "error"),
        rec(day + 86400 + 5, "2", 11, "crash"),  # the next day
        rec(day + 2 * 86400, "2", 13),  # at the end: outside [start, end)
    ]

    async def story() -> None:
        store = await open_store(url)
        try:
            await store.usage.append_usage(records)
            span = {"start": day, "end": day + 2 * 86400}
            hours = await store.usage.usage_totals(**span, bucket="hour")
            assert [(t.bucket, t.invocations, t.billed_ms) for t in hours] == [
                (int(day // 3600), 1, 5),
                (int(day // 3600) + 1, 1, 7),
                (int(day // 3600) + 24, 1, 11),
            ]
            days = await store.usage.usage_totals(**span, bucket="day")
            assert [(t.bucket, t.invocations, t.errors, t.crashes) for t in days] == [
                (int(day // 86400), 2, 1, 0),
                (int(day // 86400) + 1, 1, 0, 1),
            ]
            versions = await store.usage.usage_totals(**span, by_version=True)
            assert [(t.version, t.billed_ms, t.gb_ms_mb, t.cpu_us) for t in versions] == [
                ("1", 12, 12 * 256, 200),
                ("2", 11, 11 * 256, 0),
            ]
        finally:
            await store.close()

    asyncio.run(story())


def test_price_plans_come_from_pyfaas_toml_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "pyfaas.toml"
    config.write_text(PRICES + '\n[prices.default]\nper_million_requests = "0.25"\n')
    env = {"PYFAAS_PRICE_PER_GB_SECOND": "0.00001", "PYFAAS_PRICE_CURRENCY": "chf"}
    loaded = ServerConfig.load(file=config, env=env, home=tmp_path)
    plans = {p.name: p for p in loaded.price_plans}
    assert plans["default"] == PricePlan(
        "default", Decimal("0.00001"), Decimal("0.25"), currency="CHF"
    )
    assert plans["eur"] == PricePlan("eur", Decimal("0.00002"), Decimal("0.25"), "EUR")
    assert ServerConfig.load(env={}, home=tmp_path).price_plans == (PricePlan(),)
    config.write_text("[prices]\neur = 1\n")
    with pytest.raises(ConfigurationError, match=r"\[prices\.NAME\]"):
        ServerConfig.load(file=config, env={}, home=tmp_path)
