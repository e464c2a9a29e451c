"""The web console, end to end: a real server, real workers, and Debian's Chromium driven by
Playwright (no browser download: the machine is offline).

Screenshots of the main pages go to $PYFAAS_SCREENSHOTS when it is set (docs/screenshots/
holds the ones in the README), else to the test's temporary directory.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from playwright.sync_api import Browser, Page, expect, sync_playwright

from conftest import ServerProcess, deploy, postgres_database, serving, unique, wait_for
from pyfaas.metering.activity import quantile
from pyfaas.store.activity import DURATION_BOUNDS_US, ActivityTotals

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "console-test-token"
GREETER = {
    "handler.py": (
        "import json, time\n"
        "def handler(event, context):\n"
        "    time.sleep(event.get('sleep', 0))\n"
        "    print('hello', event.get('name', 'nobody'))\n"
        "    return {'greeting': 'hi ' + event.get('name', 'nobody')}\n"
    )
}
# Fails until the file the event names exists: dead at first, succeeds once redriven.
UNTIL_FILE = {
    "handler.py": (
        "import os\n"
        "def handler(event, context):\n"
        "    if not os.path.exists(event['file']):\n"
        "        raise RuntimeError('the upstream service is not ready')\n"
        "    return 'done'\n"
    )
}
SERVER_ENV = {"PYFAAS_RETRY_BASE_S": "0.1", "PYFAAS_IDLE_TIMEOUT_S": "30"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """This module's own server (conftest's ``api`` talks to it): fast async retries."""
    with serving(tmp_path_factory.mktemp("console"), SERVER_ENV) as started:
        yield started


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {**SERVER_ENV, "PYFAAS_TOKEN": TOKEN}
    with serving(tmp_path_factory.mktemp("console-token"), env) as started:
        yield started


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert os.path.exists(CHROMIUM), "Debian's chromium is missing: make install-test adds it"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


def screenshot(page: Page, name: str, tmp_path: Path) -> None:
    directory = Path(os.environ.get("PYFAAS_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)
    assert (directory / f"{name}.png").stat().st_size > 10_000


def greeter(api: httpx.Client, **config: Any) -> str:
    name = unique("greet")
    response = deploy(api, name, GREETER, **config)
    assert response.status_code == 201, response.text
    return name


def invoke(api: httpx.Client, name: str, event: dict[str, Any]) -> httpx.Response:
    response = api.post(f"/v1/functions/{name}/invoke", json=event)
    assert response.status_code == 200, response.text
    return response


def test_the_overview_lists_every_function_with_its_activity_and_searches_and_sorts(
    server: ServerProcess, api: httpx.Client, page: Page, tmp_path: Path
) -> None:
    busy, quiet = greeter(api, description="says hello"), greeter(api)
    for _ in range(3):
        invoke(api, busy, {"name": "Ada", "sleep": 0.03})
    page.goto(f"{server.url}/console/")
    row = page.locator(f"tr[data-name='{busy}']")
    expect(row).to_be_visible()
    cells = row.locator("td")
    expect(cells.nth(4)).to_have_text("3")  # calls in the last hour
    expect(cells.nth(5)).to_have_text("0.0%")
    # The percentiles come from a histogram clamped to the real min and max: ~30 ms here.
    p50 = float(cells.nth(6).get_attribute("data-value") or "nan")
    p99 = float(cells.nth(7).get_attribute("data-value") or "nan")
    assert 30 <= p50 <= p99 < 200, (p50, p99)
    expect(row.locator(".status")).to_have_text("warm")
    expect(page.locator(f"tr[data-name='{quiet}'] td").nth(4)).to_have_text("0")
    screenshot(page, "overview", tmp_path)

    page.fill("#search", busy)
    expect(page.locator(f"tr[data-name='{quiet}']")).to_be_hidden()
    expect(row).to_be_visible()
    expect(page.locator("#count")).to_have_text("1")
    page.fill("#search", "says hello")  # the description is searched too
    expect(row).to_be_visible()
    page.fill("#search", "no-such-function-anywhere")
    expect(page.locator("#no-match")).to_be_visible()
    page.fill("#search", "")

    calls = page.locator("th", has_text="Calls (1h)")
    calls.click()
    calls.click()  # descending: the busiest function first
    expect(calls).to_have_attribute("aria-sort", "descending")
    first = page.locator("#functions tbody tr").first
    assert int(first.locator("td").nth(4).inner_text()) >= 3
    page.locator(f"tr[data-name='{busy}'] a").click()
    expect(page.locator("h1")).to_have_text(busy)


def test_an_overview_of_many_functions_paints_the_first_rows_then_holds_them_all(
    server: ServerProcess, api: httpx.Client, page: Page
) -> None:
    prefix = unique("many")
    names = [f"{prefix}-{i:02d}" for i in range(65)]
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda n: deploy(api, n, GREETER).status_code, names))
    assert codes == [201] * len(names)
    total = len(api.get("/v1/functions").json()["functions"])
    page.goto(f"{server.url}/console/")
    expect(page.locator("#functions")).to_have_attribute("data-complete", "true")
    expect(page.locator("#functions tbody tr")).to_have_count(total)
    assert page.locator("#more-rows").count() == 0
    page.fill("#search", names[-1])
    expect(page.locator("#functions tbody tr:visible")).to_have_count(1)
    expect(page.locator(f"tr[data-name='{names[-1]}']")).to_be_visible()


def test_invoking_from_the_form_shows_the_result_its_report_the_new_log_line_and_the_chart(
    server: ServerProcess, api: httpx.Client, page: Page, tmp_path: Path
) -> None:
    name = greeter(api)
    page.goto(f"{server.url}/console/functions/{name}")
    expect(page.locator("#log-state")).to_have_text("live")
    assert page.locator("svg.chart circle.point").count() == 0, "nothing ran yet"

    page.fill("#payload", '{"name": "Grace"}')
    page.click("#invoke-button")
    expect(page.locator("#result-body")).to_contain_text('"greeting": "hi Grace"')
    expect(page.locator("#result-status")).to_have_text("ok")
    expect(page.locator("#result-report")).to_contain_text("REPORT RequestId:")
    expect(page.locator("#result-report")).to_contain_text("Billed Duration:")
    # The new invocation's log arrives over the live stream, not a reload.
    expect(page.locator("#log-lines")).to_contain_text("hello Grace")
    # The charts are redrawn with the invocation as a data point.
    calls = page.locator("svg.chart[data-title='Invocations'] circle.point.s-calls")
    expect(calls).to_have_count(1)
    assert calls.get_attribute("data-value") == "1"
    expect(page.locator("svg.chart[data-title='Duration'] circle.point")).to_have_count(2)
    screenshot(page, "function", tmp_path)

    # An event that is not JSON is refused in the form: nothing is sent.
    page.fill("#payload", "{name: Grace")
    page.click("#invoke-button")
    expect(page.locator("#payload-error")).to_contain_text("not JSON")
    stats = api.get(f"/v1/functions/{name}").json()["stats"]
    assert stats["invocations"] == 1

    # A handler error comes back as Lambda's error object, marked as an error.
    page.fill("#payload", '{"name": 7}')
    page.click("#invoke-button")
    expect(page.locator("#result-status")).to_contain_text("error (Unhandled)")
    expect(page.locator("#result-body")).to_contain_text("TypeError")


def test_the_log_view_filters_by_request_id_and_by_text(
    server: ServerProcess, api: httpx.Client, page: Page
) -> None:
    name = greeter(api)
    first = invoke(api, name, {"name": "marker-a"}).headers["x-pyfaas-request-id"]
    invoke(api, name, {"name": "marker-b"})
    page.goto(f"{server.url}/console/functions/{name}")
    lines = page.locator("#log-lines")
    expect(lines).to_contain_text("hello marker-a")
    expect(lines).to_contain_text("hello marker-b")

    page.fill("#log-filter", "marker-b")
    expect(lines).not_to_contain_text("marker-a")
    expect(lines).to_contain_text("hello marker-b")
    # Followed with the filter: a new matching line appears, a new other one does not.
    expect(page.locator("#log-state")).to_have_text("live")
    invoke(api, name, {"name": "marker-b2"})
    invoke(api, name, {"name": "marker-c"})
    expect(lines).to_contain_text("hello marker-b2")
    expect(lines).not_to_contain_text("marker-c")

    page.fill("#log-filter", "")
    page.fill("#log-request-id", first)
    expect(lines.locator(".record")).to_have_count(1)
    expect(lines).to_contain_text("hello marker-a")
    expect(lines).not_to_contain_text("marker-b")


def test_the_function_page_shows_configuration_url_schedules_and_hides_secrets(
    server: ServerProcess, api: httpx.Client
) -> None:
    environment = {
        "DB_PASSWORD": "hunter2-value",
        "STRIPE_API_KEY": "sk_live_value",
        "DATABASE_URL": "postgresql://app:pw-value@db.example/app",
        "REGION_NAME": "eu-west-1",
    }
    name = greeter(api, environment=environment, memory_mb=256)
    assert api.post(f"/v1/functions/{name}/url", json={"auth_type": "NONE"}).status_code == 201
    schedule = api.post(f"/v1/functions/{name}/schedules", json={"expression": "rate(1 day)"})
    assert schedule.status_code == 201, schedule.text
    html = httpx.get(f"{server.url}/console/functions/{name}").text
    for secret in ("hunter2-value", "sk_live_value", "pw-value"):
        assert secret not in html
    assert "eu-west-1" in html
    assert "postgresql://app:••••••••@db.example/app" in html
    assert f"{server.url}/fn/{name}/" in html
    assert "rate(1 day)" in html
    assert ">256<" in html
    assert 'id="versions"' in html  # filled in by the page's script: see the next test


def test_the_function_page_lists_versions_and_the_alias_with_its_canary_weight(
    server: ServerProcess, api: httpx.Client, page: Page
) -> None:
    name = greeter(api)
    for _ in range(2):
        assert api.post(f"/v1/functions/{name}/versions").status_code in (200, 201)
        api.patch(f"/v1/functions/{name}", json={"description": f"v{_ + 2}"})
    alias = {"version": "1", "additional_version_weights": {"2": 0.1}}
    assert api.put(f"/v1/functions/{name}/aliases/live", json=alias).status_code in (200, 201)
    page.goto(f"{server.url}/console/functions/{name}")
    body = page.locator("#versions-body")
    expect(body).to_contain_text("Aliases (with canary weights)")
    expect(body).to_contain_text("live")
    expect(body).to_contain_text('{"2":0.1}')
    assert body.locator("table").first.locator("tbody tr").count() == 2  # versions 1 and 2


def test_usage_and_cost_by_function_and_day_with_a_chart_and_csv(
    server: ServerProcess, api: httpx.Client, page: Page, tmp_path: Path
) -> None:
    name = greeter(api)
    for _ in range(2):
        invoke(api, name, {"name": "Ada"})
    page.goto(f"{server.url}/console/usage?function={name}")
    row = page.locator("#usage tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(0)).to_have_text(name)
    expect(row.locator("td").nth(2)).to_have_text("2")
    bars = page.locator("svg.chart[data-title='Invocations per day'] rect.point")
    expect(bars).to_have_count(1)
    assert bars.get_attribute("data-value") == "2"
    expect(page.locator("svg.chart[data-title='Cost per day (USD)'] rect.point")).to_have_count(1)

    with page.expect_download() as download:
        page.click("#csv")
    csv = Path(download.value.path()).read_text()
    header, line = csv.splitlines()
    assert header.startswith("function,day,invocations,")
    assert line.startswith(f"{name},") and line.split(",")[2] == "2"

    page.goto(f"{server.url}/console/usage")
    screenshot(page, "usage", tmp_path)
    page.fill("#start", "yesterday-ish")
    page.click("form.row button")
    expect(page.locator("#error")).to_contain_text("invalid_range")


def test_a_dead_letter_is_redriven_from_the_async_page(
    server: ServerProcess, api: httpx.Client, page: Page, tmp_path: Path
) -> None:
    name = unique("dlq")
    assert deploy(api, name, UNTIL_FILE, maximum_retry_attempts=0).status_code == 201
    marker = tmp_path / "ready"
    accepted = api.post(
        f"/v1/functions/{name}/invoke",
        json={"file": str(marker)},
        headers={"X-Invocation-Type": "Event"},
    )
    request_id = accepted.json()["request_id"]
    wait_for(
        lambda: api.get(f"/v1/invocations/{request_id}").json()["status"] == "dead",
        what="event dead",
    )
    page.goto(f"{server.url}/console/async?function={name}")
    row = page.locator(f"tr[data-request-id='{request_id}']")
    expect(row.locator("td.why")).to_contain_text("RuntimeError: the upstream service is not ready")
    expect(page.locator("#backlog")).to_contain_text(name)
    screenshot(page, "async", tmp_path)

    marker.touch()
    row.locator("button.redrive").click()
    expect(row).to_have_class(re.compile("redriven"))
    wait_for(
        lambda: api.get(f"/v1/invocations/{request_id}").json()["status"] == "succeeded",
        what="redriven event succeeded",
    )
    page.reload()
    expect(page.locator("#dlq")).to_contain_text("The dead-letter queue is empty.")


def test_a_token_server_asks_for_the_token_and_keeps_it_in_an_httponly_cookie(
    guarded: ServerProcess, page: Page, tmp_path: Path
) -> None:
    with guarded.client() as client:
        name = greeter(client)
    page.goto(f"{guarded.url}/console/functions/{name}")
    expect(page).to_have_url(re.compile(r"/console/login\?next="))
    screenshot(page, "login", tmp_path)
    page.fill("#token", "not-the-token")
    page.click("#login button")
    expect(page.locator("#login-error")).to_contain_text("not valid")

    page.fill("#token", TOKEN)
    page.click("#login button")
    expect(page.locator("h1")).to_have_text(name)  # back where it was going
    cookie = next(c for c in page.context.cookies() if c["name"] == "pyfaas_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert page.evaluate("document.cookie") == "", "scripts cannot read the token"

    # Every data call goes through the API's own token check: invoke and logs work.
    page.fill("#payload", '{"name": "Lin"}')
    page.click("#invoke-button")
    expect(page.locator("#result-body")).to_contain_text("hi Lin")
    expect(page.locator("#log-lines")).to_contain_text("hello Lin")

    page.click("a.logout")
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.goto(f"{guarded.url}/console/async")
    expect(page).to_have_url(re.compile(r"/console/login\?next=/console/async"))


def test_a_wrong_or_stale_cookie_is_no_session(guarded: ServerProcess) -> None:
    stale = {"Cookie": "pyfaas_console=old-token"}
    page = httpx.get(f"{guarded.url}/console/", headers={**stale, "Accept": "text/html"})
    assert page.status_code == 303
    assert page.headers["location"] == "/console/login?next=/console/&expired=1"
    assert "pyfaas_console=" in page.headers["set-cookie"]  # cleared
    # A script's request (not a page load) gets the API's 401, not a login page.
    fragment = httpx.get(f"{guarded.url}/console/functions/x/charts", headers=stale)
    assert fragment.status_code == 401 and fragment.json()["error"]["code"] == "unauthorized"
    anonymous = httpx.get(f"{guarded.url}/console/async", headers={"Accept": "text/html"})
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/console/login?next=/console/async"
    data = httpx.get(f"{guarded.url}/console/api/v1/functions", headers=stale)
    assert data.status_code == 401 and data.json()["error"]["code"] == "unauthorized"
    good = {"Cookie": f"pyfaas_console={TOKEN}"}
    assert httpx.get(f"{guarded.url}/console/api/v1/functions", headers=good).status_code == 200
    # The cookie is the console's: the API itself still wants the header.
    assert httpx.get(f"{guarded.url}/v1/functions", headers=good).status_code == 401
    # Logging in needs the token in the header; without one it is the API's 401.
    refused = httpx.post(f"{guarded.url}/console/session")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    # The login page and the static files need no token.
    assert httpx.get(f"{guarded.url}/console/login").status_code == 200
    assert httpx.get(f"{guarded.url}/console/static/console.js").status_code == 200


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/console/functions/no-such-function", 404, "function_not_found"),
        ("/console/functions/no-such-function/charts", 404, "function_not_found"),
        ("/console/usage?start=someday", 400, "invalid_range"),
        ("/console/usage?function=bad%20name", 400, "invalid_name"),
        ("/console/no-such-page", 404, "route_not_found"),
    ],
)
def test_bad_console_requests_get_a_page_with_the_error_code(
    server: ServerProcess, path: str, status: int, code: str
) -> None:
    response = httpx.get(server.url + path)
    assert response.status_code == status
    assert code in response.text


def test_a_chart_range_must_be_one_the_console_knows(
    server: ServerProcess, api: httpx.Client
) -> None:
    name = greeter(api)
    response = httpx.get(f"{server.url}/console/functions/{name}?range=2y")
    assert response.status_code == 400
    assert "invalid_range" in response.text and "1h, 6h, 24h, 7d" in response.text


def test_console_api_paths_map_onto_the_api_only(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/console/api/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "route_not_found"
    assert httpx.get(f"{server.url}/console/api/v1/health").json()["status"] == "ok"
    # A server without a token has no session to create.
    session = httpx.post(f"{server.url}/console/session", headers={"Authorization": "Bearer x"})
    assert session.status_code == 400
    assert session.json()["error"]["code"] == "token_not_required"


def test_pages_forbid_inline_script_and_other_origins(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/console/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'self'" in policy
    assert "<script>" not in response.text  # all script is in static/console.js
    assert (
        json.loads(httpx.get(f"{server.url}/v1/openapi.json").text)["paths"]
        .keys()
        .isdisjoint({"/console/", "/console/session"})
    )


@settings(deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=900_000_000), min_size=1, max_size=200))
def test_percentiles_from_the_histogram_land_in_the_bucket_of_the_true_value(
    durations: list[int],
) -> None:
    totals = ActivityTotals(
        function="f",
        bucket=None,
        invocations=len(durations),
        errors=0,
        cold_starts=0,
        busy_us=sum(durations),
        min_us=min(durations),
        max_us=max(durations),
        under=tuple(sum(d <= b for d in durations) for b in DURATION_BOUNDS_US),
    )
    ordered = sorted(durations)
    for q in (0.5, 0.99):
        estimate = quantile(q, totals)
        assert estimate is not None
        true = ordered[max(0, math.ceil(q * len(ordered)) - 1)]
        upper = next(b for b in DURATION_BOUNDS_US if true <= b)
        lower = max([0, *(b for b in DURATION_BOUNDS_US if b < true)])
        assert max(lower, ordered[0]) <= estimate <= min(upper, ordered[-1])
    if len(set(durations)) == 1:
        assert quantile(0.5, totals) == durations[0]


@pytest.mark.postgres
def test_activity_and_charts_on_postgresql_land_in_the_minute_the_calls_ran(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with (
        postgres_database() as url,
        serving(tmp_path_factory.mktemp("console-pg"), {"PYFAAS_DATABASE_URL": url}) as pg,
        pg.client() as client,
    ):
        name = greeter(client)
        before = time.time()
        for _ in range(3):
            invoke(client, name, {"name": "Ada", "sleep": 0.02})
        after = time.time()
        minutes = {time.strftime("%H:%M", time.gmtime(t)) for t in (before, after)}

        overview = httpx.get(f"{pg.url}/console/").text
        row = re.search(rf'<tr data-name="{name}".*?</tr>', overview, re.S)
        assert row is not None
        values = re.findall(r'data-value="([^"]*)"', row[0])
        assert values[4] == "3"  # calls in the last hour
        assert 20 <= float(values[6]) <= float(values[7]) < 200  # p50, p99 in ms

        page = httpx.get(f"{pg.url}/console/functions/{name}").text
        points = re.findall(
            r'<circle class="point s-calls"[^>]*data-value="([^"]+)"><title>([^:]+:\d\d):', page
        )
        assert sum(float(v) for v, _ in points) == 3
        assert {label for _, label in points} <= minutes
        for span in ("24h", "7d"):
            charts = httpx.get(f"{pg.url}/console/functions/{name}/charts?range={span}").text
            day = re.findall(r'<circle class="point s-calls"[^>]*data-value="([^"]+)"', charts)
            assert day == ["3"], span


def test_a_read_only_token_sees_no_write_buttons(guarded: ServerProcess) -> None:
    admin = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=guarded.url, headers=admin) as client:
        name = greeter(client)
        made = client.post("/v1/tokens", json={"name": unique("ro"), "scopes": ["read"]})
        assert made.status_code == 201, made.text
        read_only = made.json()["token"]
    for token, writes in ((TOKEN, True), (read_only, False)):
        cookie = {"Cookie": f"pyfaas_console={token}"}
        page = httpx.get(f"{guarded.url}/console/functions/{name}", headers=cookie)
        assert page.status_code == 200, page.text
        assert ('id="invoke-button"' in page.text) is writes
        assert f'data-can-write="{str(writes).lower()}"' in page.text, token
