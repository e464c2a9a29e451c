"""`make run` deploys examples/ at start; each example does what its docstring says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ServerProcess

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def with_examples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # As `make run` does it: a relative data directory under the working directory.
    srv = ServerProcess(
        tmp_path_factory.mktemp("examples"),
        "--deploy-dir",
        str(EXAMPLES),
        env={"PYFAAS_HOME": ".pyfaas"},
    )
    srv.wait_ready(timeout=300)
    yield srv
    srv.stop()


@pytest.mark.slow
def test_every_example_is_deployed_at_start(with_examples: ServerProcess) -> None:
    with with_examples.client() as api:
        names = {f["name"] for f in api.get("/v1/functions").json()["functions"]}
        apps = {p.name for p in EXAMPLES.iterdir() if (p / "pyfaas.toml").is_file()}
        assert apps == {"app"}  # an app is deployed with `pyfaas deploy --app`, not at start
        assert names == {p.name for p in EXAMPLES.iterdir() if (p / "handler.py").is_file()}
        assert "notebooks" not in names  # notebooks, run by test_sdk.py

        hello = api.post("/v1/functions/hello/invoke", json={"name": "Ada"}).json()
        assert hello["message"] == "Hello, Ada!"

        assert (
            api.post("/v1/functions/async-hello/invoke", json={"delay_s": 0.01}).json()["slept_s"]
            == 0.01
        )

        primes = api.post("/v1/functions/cpu-bound/invoke", json={"limit": 100_000}).json()
        assert primes["primes"] == 9592

        declined = api.post("/v1/functions/raises/invoke", json={"amount": 500})
        assert declined.headers["x-pyfaas-function-error"] == "Unhandled"
        assert declined.json()["errorType"] == "PaymentDeclined"

        human = api.post("/v1/functions/with-requirements/invoke", json={"bytes": 3000000})
        assert human.json()["human"] == "3.0 MB"
    assert (with_examples.home / ".pyfaas" / "pyfaas.db").is_file()
