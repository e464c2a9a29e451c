"""The AWS Lambda API: the real boto3 client and the real `aws` CLI against a real pyfaas
server (SigV4-signed, real workers, real Redis for an event source mapping)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
import redis
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import create_parser
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import BIN, ServerProcess, post_many, run_cli, serving, unique, wait_for
from pyfaas.api.lambda_api.errors import lambda_error_response
from pyfaas.model import ConfigurationError, ServiceUnavailable
from pyfaas.server.config import ServerConfig

pytestmark = pytest.mark.slow

KEY_ID, SECRET = "AKIAPYFAASTEST000001", "test-secret-key"
TOKEN = "native-token-123"
REDIS_URL = "redis://127.0.0.1:6379/0"
SERVER_ENV = {
    "PYFAAS_ACCESS_KEYS": f"{KEY_ID}:{SECRET}",
    "PYFAAS_TOKEN": TOKEN,
    "PYFAAS_QUEUE_WAIT_S": "0.05",
    "PYFAAS_RETRY_BASE_S": "0.2",
    "PYFAAS_SOURCE_BACKOFF_S": "0.1",
    "PYFAAS_EVENT_LEASE_S": "2",
}
ROLE = "arn:aws:iam::000000000000:role/ignored"

# Appends each event to $OUT; answers with what it saw. {"fail": true} raises.
HANDLER = (
    "import json, os\n"
    "VERSION = 'v1'\n"
    "def handler(event, context):\n"
    "    print('got event', json.dumps(event))\n"
    "    if isinstance(event, dict) and event.get('fail'):\n"
    "        raise ValueError('asked to fail')\n"
    "    if os.environ.get('OUT'):\n"
    "        with open(os.environ['OUT'], 'a') as f:\n"
    "            f.write(json.dumps(event) + '\\n')\n"
    "    cc = context.client_context\n"
    "    return {'version': VERSION, 'event': event, 'greeting': os.environ.get('GREETING'),\n"
    "            'custom': cc.custom if cc else None, 'arn': context.invoked_function_arn}\n"
)


def zip_of(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def client_of(url: str, key: str = KEY_ID, secret: str = SECRET) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}, read_timeout=60),
    )


@pytest.fixture(scope="module")
def lambda_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serving(tmp_path_factory.mktemp("lambda-api"), SERVER_ENV) as srv:
        yield srv


@pytest.fixture()
def lam(lambda_server: ServerProcess) -> Any:
    return client_of(lambda_server.url)


@pytest.fixture()
def native(lambda_server: ServerProcess) -> Iterator[httpx.Client]:
    with lambda_server.client() as client:
        yield client


def create(lam: Any, name: str, code: str = HANDLER, **extra: Any) -> dict[str, Any]:
    request = {
        "FunctionName": name,
        "Runtime": "python3.11",
        "Role": ROLE,
        "Handler": "handler.handler",
        "Code": {"ZipFile": zip_of({"handler.py": code})},
    }
    result: dict[str, Any] = lam.create_function(**{**request, **extra})
    return result


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Message"]


def lines(path: Path) -> list[Any]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- the life cycle of a function ---------------------------------------------------------


def test_function_life_cycle_through_boto3(lam: Any, tmp_path: Path) -> None:
    name = unique("life")
    out = tmp_path / "events.jsonl"
    created = create(
        lam,
        name,
        MemorySize=256,
        Timeout=10,
        Description="made by boto3",
        Environment={"Variables": {"GREETING": "hi", "OUT": str(out)}},
    )
    assert created["FunctionName"] == name
    assert created["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert (created["State"], created["LastUpdateStatus"]) == ("Active", "Successful")
    assert (created["MemorySize"], created["Timeout"]) == (256, 10)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    lam.get_waiter("function_active_v2").wait(FunctionName=name)

    got = lam.get_function(FunctionName=name)
    assert got["Configuration"]["Description"] == "made by boto3"
    assert got["Configuration"]["Environment"]["Variables"]["GREETING"] == "hi"
    config = lam.get_function_configuration(FunctionName=created["FunctionArn"])
    assert config["Handler"] == "handler.handler" and config["Version"] == "$LATEST"

    # Synchronous, with the log tail and a client context.
    context = base64.b64encode(json.dumps({"custom": {"tenant": "t1"}}).encode()).decode()
    answer = lam.invoke(
        FunctionName=name, Payload=b'{"n": 1}', LogType="Tail", ClientContext=context
    )
    assert answer["StatusCode"] == 200 and answer["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in answer
    body = json.loads(answer["Payload"].read())
    assert body["event"] == {"n": 1} and body["greeting"] == "hi"
    assert body["custom"] == {"tenant": "t1"}
    tail = base64.b64decode(answer["LogResult"]).decode()
    assert 'got event {"n": 1}' in tail and "REPORT RequestId:" in tail

    # A handler error.
    failed = lam.invoke(FunctionName=name, Payload=b'{"fail": true}')
    assert failed["StatusCode"] == 200 and failed["FunctionError"] == "Unhandled"
    error = json.loads(failed["Payload"].read())
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "asked to fail"

    # Asynchronous: accepted at once, run soon after.
    accepted = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"async": 7}')
    assert accepted["StatusCode"] == 202
    wait_for(lambda: {"async": 7} in lines(out), what="the async event to run")

    # Dry run: checked, not run.
    before = len(lines(out))
    assert lam.invoke(FunctionName=name, InvocationType="DryRun")["StatusCode"] == 204
    time.sleep(0.3)
    assert len(lines(out)) == before

    # New code, then the waiter, then the new code answers.
    revision = lam.get_function(FunctionName=name)["Configuration"]["RevisionId"]
    updated = lam.update_function_code(
        FunctionName=name,
        ZipFile=zip_of({"handler.py": HANDLER.replace("'v1'", "'v2'")}),
        RevisionId=revision,
    )
    assert updated["RevisionId"] != revision and updated["CodeSha256"] != created["CodeSha256"]
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read())["version"] == "v2"
    with pytest.raises(ClientError) as stale:
        lam.update_function_code(FunctionName=name, ZipFile=zip_of({"handler.py": HANDLER}),
                                 RevisionId=revision)  # fmt: skip
    assert error_of(stale)[:2] == ("PreconditionFailedException", 412)

    # New configuration, same code.
    reconfigured = lam.update_function_configuration(
        FunctionName=name, Timeout=20, Environment={"Variables": {"GREETING": "hello"}}
    )
    assert reconfigured["Timeout"] == 20
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read())["greeting"] == "hello"

    assert lam.delete_function(FunctionName=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)


def test_concurrency_settings_map_to_pyfaas_scaling(lam: Any, native: httpx.Client) -> None:
    name = unique("conc")
    create(lam, name)
    assert (
        lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions") is None
    )
    put = lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=3)
    assert put["ReservedConcurrentExecutions"] == 3
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 3
    assert native.get(f"/v1/functions/{name}").json()["reserved_concurrency"] == 3
    assert lam.get_function(FunctionName=name)["Concurrency"] == {"ReservedConcurrentExecutions": 3}

    with pytest.raises(ClientError) as missing:
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="$LATEST")
    assert error_of(missing)[:2] == ("ProvisionedConcurrencyConfigNotFoundException", 404)
    provisioned = lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=2
    )
    assert provisioned["Status"] == "READY"
    assert provisioned["AllocatedProvisionedConcurrentExecutions"] == 2
    stats = native.get(f"/v1/functions/{name}").json()["stats"]
    assert stats["workers_idle"] + stats["workers_busy"] >= 2
    listed = lam.list_provisioned_concurrency_configs(FunctionName=name)
    assert [c["RequestedProvisionedConcurrentExecutions"] for c in
            listed["ProvisionedConcurrencyConfigs"]] == [2]  # fmt: skip
    with pytest.raises(ClientError) as too_many:  # provisioned may not pass reserved
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=5
        )
    code, status, message = error_of(too_many)
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "ProvisionedConcurrentExecutions" in message
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="$LATEST")
    assert native.get(f"/v1/functions/{name}").json()["provisioned_concurrency"] == 0

    # Reserved 0 stops every call: TooManyRequestsException with Lambda's reason.
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(lam.exceptions.TooManyRequestsException) as throttled:
        lam.invoke(FunctionName=name)
    assert throttled.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    lam.delete_function_concurrency(FunctionName=name)
    assert lam.invoke(FunctionName=name)["StatusCode"] == 200
    lam.delete_function(FunctionName=name)


def test_event_invoke_config_sets_retries_age_and_a_function_destination(
    lam: Any, tmp_path: Path
) -> None:
    name, sink = unique("eic"), unique("eic-sink")
    out = tmp_path / "sink.jsonl"
    create(lam, name)
    sink_arn = create(lam, sink, Environment={"Variables": {"OUT": str(out)}})["FunctionArn"]
    put = lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        MaximumEventAgeInSeconds=120,
        DestinationConfig={"OnSuccess": {"Destination": sink_arn}},
    )
    assert (put["MaximumRetryAttempts"], put["MaximumEventAgeInSeconds"]) == (0, 120)
    assert put["DestinationConfig"]["OnSuccess"]["Destination"] == sink_arn
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"order": 1}')
    wait_for(lambda: bool(lines(out)), what="the success record at the destination")
    record = lines(out)[0]
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestPayload"] == {"order": 1}

    updated = lam.update_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    assert updated["MaximumRetryAttempts"] == 1 and updated["MaximumEventAgeInSeconds"] == 120
    replaced = lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=2)
    assert replaced["MaximumEventAgeInSeconds"] == 6 * 3600
    assert replaced["DestinationConfig"]["OnSuccess"] == {}

    for destination in ("arn:aws:sqs:us-east-1:000000000000:queue", sink_arn + "-missing"):
        with pytest.raises(ClientError) as bad:
            lam.put_function_event_invoke_config(
                FunctionName=name, DestinationConfig={"OnFailure": {"Destination": destination}}
            )
        assert error_of(bad)[:2] == ("InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as bad_age:
        lam.put_function_event_invoke_config(
            FunctionName=name, MaximumEventAgeInSeconds=60 * 60 * 7
        )
    assert "MaximumEventAgeInSeconds" in error_of(bad_age)[2]
    lam.delete_function_event_invoke_config(FunctionName=name)
    got = lam.get_function_event_invoke_config(FunctionName=name)
    assert got["MaximumRetryAttempts"] == 2
    for fn in (name, sink):
        lam.delete_function(FunctionName=fn)


def test_function_url_config_is_served_by_pyfaas_function_urls(lam: Any) -> None:
    name = unique("url")
    create(lam, name)
    made = lam.create_function_url_config(
        FunctionName=name,
        AuthType="NONE",
        Cors={"AllowOrigins": ["https://app.example"], "AllowMethods": ["GET"], "MaxAge": 60},
    )
    url = made["FunctionUrl"]
    assert url.endswith(f"/fn/{name}/") and made["AuthType"] == "NONE"
    response = httpx.get(url + "items?x=1", headers={"Origin": "https://app.example"})
    assert response.status_code == 200
    assert response.json()["event"]["rawPath"] == "/items"
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.create_function_url_config(FunctionName=name, AuthType="NONE")

    changed = lam.update_function_url_config(FunctionName=name, Cors={"AllowOrigins": ["*"]})
    assert changed["Cors"]["AllowOrigins"] == ["*"]
    assert lam.get_function_url_config(FunctionName=name)["Cors"]["AllowOrigins"] == ["*"]
    assert [c["FunctionUrl"] for c in lam.list_function_url_configs(FunctionName=name)[
        "FunctionUrlConfigs"]] == [url]  # fmt: skip
    # AWS_IAM is the server's API token on pyfaas.
    lam.update_function_url_config(FunctionName=name, AuthType="AWS_IAM")
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    with pytest.raises(ClientError) as bad:
        lam.update_function_url_config(FunctionName=name, AuthType="SIGV4")
    assert error_of(bad)[:2] == ("InvalidParameterValueException", 400)

    lam.delete_function_url_config(FunctionName=name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_url_config(FunctionName=name)
    # Gone (a caller without the server's token learns nothing: 401 either way).
    assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
    lam.delete_function(FunctionName=name)


def test_event_source_mapping_on_a_redis_stream(lam: Any, tmp_path: Path) -> None:
    name = unique("esm")
    out = tmp_path / "records.jsonl"
    create(lam, name, Environment={"Variables": {"OUT": str(out)}})
    stream = f"lambda-api-{uuid.uuid4().hex[:8]}"
    broker = redis.Redis.from_url(REDIS_URL)
    arn = f"arn:pyfaas:redis:::{REDIS_URL}"
    try:
        made = lam.create_event_source_mapping(
            EventSourceArn=arn,
            FunctionName=name,
            Topics=[stream],
            BatchSize=5,
            StartingPosition="TRIM_HORIZON",
        )
        assert made["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert (made["EventSourceArn"], made["Topics"], made["BatchSize"]) == (arn, [stream], 5)
        mapping = made["UUID"]
        for i in range(3):
            broker.xadd(stream, {"data": f"m{i}"})

        def bodies() -> list[str]:
            return [
                base64.b64decode(r["kinesis"]["data"]).decode()
                for event in lines(out)
                for r in event["Records"]
            ]

        wait_for(lambda: sorted(bodies()) == ["m0", "m1", "m2"], what="the three records")
        wait_for(
            lambda: lam.get_event_source_mapping(UUID=mapping)["State"] == "Enabled",
            what="the mapping to be Enabled",
        )
        assert [m["UUID"] for m in lam.list_event_source_mappings(FunctionName=name)[
            "EventSourceMappings"]] == [mapping]  # fmt: skip
        by_arn = lam.list_event_source_mappings(EventSourceArn=arn)["EventSourceMappings"]
        assert mapping in [m["UUID"] for m in by_arn]
        changed = lam.update_event_source_mapping(UUID=mapping, BatchSize=10, Enabled=False)
        assert (changed["BatchSize"], changed["State"]) == (10, "Disabled")
        deleted = lam.delete_event_source_mapping(UUID=mapping)
        assert deleted["State"] == "Deleting"
        with pytest.raises(lam.exceptions.ResourceNotFoundException):
            lam.get_event_source_mapping(UUID=mapping)

        for bad_arn in ("arn:aws:sqs:us-east-1:000000000000:q", "arn:pyfaas:kafka:::k://h:1"):
            with pytest.raises(ClientError) as bad:
                lam.create_event_source_mapping(
                    EventSourceArn=bad_arn, FunctionName=name, Topics=[stream]
                )
            assert error_of(bad)[:2] == ("InvalidParameterValueException", 400)
        with pytest.raises(ClientError) as unreachable:
            lam.create_event_source_mapping(
                EventSourceArn="arn:pyfaas:redis:::redis://127.0.0.1:1/0",
                FunctionName=name,
                Topics=[stream],
            )
        assert "cannot connect to redis" in error_of(unreachable)[2]
        with pytest.raises(ClientError) as big:
            lam.create_event_source_mapping(
                EventSourceArn=arn, FunctionName=name, Topics=[stream], BatchSize=20000
            )
        assert "BatchSize" in error_of(big)[2]
        assert lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"] == []
    finally:
        broker.delete(stream)
        broker.close()
    lam.delete_function(FunctionName=name)


def test_list_functions_pages_through_120_functions(lam: Any) -> None:
    prefix = f"page-{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-{i:03d}" for i in range(120)]
    code = zip_of({"handler.py": "def handler(event, context):\n    return 1\n"})
    for name in names:
        lam.create_function(
            FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="handler.handler",
            Code={"ZipFile": code},
        )  # fmt: skip
    try:
        pages = list(
            lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 25})
        )
        seen = [f["FunctionName"] for page in pages for f in page["Functions"]]
        assert [n for n in seen if n.startswith(prefix)] == names
        assert len(seen) == len(set(seen))
        assert all(len(page["Functions"]) <= 25 for page in pages) and len(pages) >= 5
        first = lam.list_functions(MaxItems=7)
        assert len(first["Functions"]) == 7 and "NextMarker" in first
        following = lam.list_functions(MaxItems=7, Marker=first["NextMarker"])
        assert following["Functions"][0]["FunctionName"] > first["Functions"][-1]["FunctionName"]
        default = lam.list_functions()
        assert len(default["Functions"]) == 50
        settings = lam.get_account_settings()
        assert settings["AccountUsage"]["FunctionCount"] >= 120
    finally:
        for name in names:
            lam.delete_function(FunctionName=name)


# --- versions and aliases ------------------------------------------------------------------


def versioned(lam: Any, name: str, **extra: Any) -> None:
    """``name`` with version 1 (answers v1) and version 2 (answers v2); $LATEST is v2."""
    create(lam, name, **extra)
    lam.publish_version(FunctionName=name)
    lam.update_function_code(
        FunctionName=name, ZipFile=zip_of({"handler.py": HANDLER.replace("'v1'", "'v2'")})
    )
    lam.publish_version(FunctionName=name)


def ran(answer: dict[str, Any]) -> tuple[str, str]:
    """(the code's marker, X-Amz-Executed-Version) of an invoke's answer."""
    return json.loads(answer["Payload"].read())["version"], answer["ExecutedVersion"]


def test_publish_list_versions_and_invoke_each_by_qualifier(lam: Any, tmp_path: Path) -> None:
    name = unique("ver")
    out = tmp_path / "events.jsonl"
    create(lam, name, Environment={"Variables": {"OUT": str(out)}}, Description="the function")
    first = lam.publish_version(FunctionName=name, Description="first")
    assert first["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert (first["Version"], first["Description"]) == ("1", "first")
    assert first["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}:1"
    # Nothing changed: the newest version again, as Lambda does.
    assert lam.publish_version(FunctionName=name)["Version"] == "1"

    v2 = HANDLER.replace("'v1'", "'v2'")
    latest = lam.update_function_code(FunctionName=name, ZipFile=zip_of({"handler.py": v2}))
    with pytest.raises(ClientError) as stale_code:
        lam.publish_version(FunctionName=name, CodeSha256=first["CodeSha256"])
    assert error_of(stale_code)[:2] == ("InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as stale_revision:
        lam.publish_version(FunctionName=name, RevisionId=first["RevisionId"])
    assert error_of(stale_revision)[:2] == ("PreconditionFailedException", 412)
    second = lam.publish_version(
        FunctionName=name, CodeSha256=latest["CodeSha256"], RevisionId=latest["RevisionId"]
    )
    assert (second["Version"], second["Description"]) == ("2", "the function")
    third = lam.update_function_code(
        FunctionName=name, ZipFile=zip_of({"handler.py": HANDLER.replace("'v1'", "'v3'")}),
        Publish=True,
    )  # fmt: skip
    assert third["Version"] == "3" and third["FunctionArn"].endswith(f"{name}:3")

    listed = lam.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in listed] == ["$LATEST", "1", "2", "3"]
    assert listed[1]["Description"] == "first" and listed[0]["FunctionArn"].endswith(name)
    pages = list(
        lam.get_paginator("list_versions_by_function").paginate(
            FunctionName=name, PaginationConfig={"PageSize": 3}
        )
    )
    assert [[v["Version"] for v in p["Versions"]] for p in pages] == [["$LATEST", "1", "2"], ["3"]]
    after = lam.list_versions_by_function(FunctionName=name, Marker="1", MaxItems=1)
    assert [v["Version"] for v in after["Versions"]] == ["2"] and after["NextMarker"] == "2"

    # Each version runs its own code; the ARN the handler sees names the qualifier.
    answer = lam.invoke(FunctionName=name, Qualifier="1", LogType="Tail")
    body = json.loads(answer["Payload"].read())
    assert (body["version"], answer["ExecutedVersion"]) == ("v1", "1")
    assert body["arn"].endswith(f"function:{name}:1")
    assert "Version: 1" in base64.b64decode(answer["LogResult"]).decode()
    assert ran(lam.invoke(FunctionName=f"{name}:2")) == ("v2", "2")
    assert ran(lam.invoke(FunctionName=f"{name}:$LATEST")) == ("v3", "$LATEST")
    assert ran(lam.invoke(FunctionName=name)) == ("v3", "$LATEST")
    assert lam.invoke(FunctionName=name, Qualifier="2", InvocationType="DryRun")[
        "StatusCode"] == 204  # fmt: skip
    lam.invoke(FunctionName=name, Qualifier="1", InvocationType="Event", Payload=b'{"at": 1}')
    wait_for(lambda: {"at": 1} in lines(out), what="the async event to version 1")

    config = lam.get_function_configuration(FunctionName=name, Qualifier="1")
    assert (config["Version"], config["Description"]) == ("1", "first")
    assert config["CodeSha256"] == first["CodeSha256"] != latest["CodeSha256"]
    got = lam.get_function(FunctionName=f"{name}:2")["Configuration"]
    assert got["Version"] == "2" and got["FunctionArn"].endswith(f"{name}:2")
    lam.delete_function(FunctionName=name)


def test_create_function_with_publish_answers_version_1(lam: Any) -> None:
    name = unique("pub")
    made = create(lam, name, Publish=True)
    assert (made["Version"], made["FunctionArn"].rsplit(":", 1)[1]) == ("1", "1")
    assert ran(lam.invoke(FunctionName=name, Qualifier="1")) == ("v1", "1")
    lam.delete_function(FunctionName=name)


def presigned(server: ServerProcess, path: str, body: bytes) -> dict[str, str]:
    """SigV4 headers for POSTing ``body`` to ``path`` as conftest.post_many sends it (its
    Host header has no port); valid for any number of sends within 15 minutes."""
    from botocore.auth import SigV4Auth
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST", url=f"{server.url}{path}", data=body, headers={"Host": "127.0.0.1"}
    )
    SigV4Auth(Credentials(KEY_ID, SECRET), "lambda", "us-east-1").add_auth(request)
    return {k: v for k, v in request.headers.items() if k.lower() != "host"}


def test_a_ten_percent_canary_alias_sends_about_a_tenth_of_the_calls(
    lambda_server: ServerProcess, lam: Any
) -> None:
    name = unique("canary")
    versioned(lam, name)
    alias = lam.create_alias(
        FunctionName=name, Name="live", FunctionVersion="1", Description="production",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}},
    )  # fmt: skip
    assert alias["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert alias["AliasArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}:live"
    assert alias["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.1}}
    got = lam.get_alias(FunctionName=name, Name="live")
    assert (got["FunctionVersion"], got["Description"]) == ("1", "production")
    assert got["RevisionId"] == alias["RevisionId"]

    path = f"/2015-03-31/functions/{name}:live/invocations"
    answers = post_many(
        lambda_server.url, path, [b"{}"] * 1000, presigned(lambda_server, path, b"{}"), 4
    )
    assert {status for status, _ in answers} == {200}
    canary = sum(json.loads(body)["version"] == "v2" for _, body in answers)
    assert 60 <= canary <= 140, f"{canary} of 1000 calls ran the 10% canary"
    seen = {ran(lam.invoke(FunctionName=name, Qualifier="live")) for _ in range(40)}
    assert seen <= {("v1", "1"), ("v2", "2")} and ("v1", "1") in seen

    # Promote: version 2 takes everything; the canary ends.
    with pytest.raises(ClientError) as stale:
        lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2",
                         RevisionId="00000000-0000-0000-0000-000000000000")  # fmt: skip
    assert error_of(stale)[:2] == ("PreconditionFailedException", 412)
    promoted = lam.update_alias(
        FunctionName=name, Name="live", FunctionVersion="2", RevisionId=got["RevisionId"],
        RoutingConfig={"AdditionalVersionWeights": {}},
    )  # fmt: skip
    assert promoted["FunctionVersion"] == "2" and "RoutingConfig" not in promoted
    assert promoted["Description"] == "production"
    assert {ran(lam.invoke(FunctionName=name, Qualifier="live")) for _ in range(20)} == {
        ("v2", "2")}  # fmt: skip
    config = lam.get_function_configuration(FunctionName=name, Qualifier="live")
    assert config["Version"] == "2" and config["FunctionArn"].endswith(f"{name}:live")

    lam.create_alias(FunctionName=name, Name="old", FunctionVersion="1")
    listed = lam.list_aliases(FunctionName=name)["Aliases"]
    assert [a["Name"] for a in listed] == ["live", "old"]
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name, FunctionVersion="1")[
        "Aliases"]] == ["old"]  # fmt: skip
    page = lam.list_aliases(FunctionName=name, MaxItems=1)
    assert [a["Name"] for a in page["Aliases"]] == ["live"] and page["NextMarker"] == "live"
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name, Marker="live")[
        "Aliases"]] == ["old"]  # fmt: skip
    lam.delete_alias(FunctionName=name, Name="old")
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name)["Aliases"]] == ["live"]
    lam.delete_function(FunctionName=name)


def test_an_alias_has_its_own_url_and_provisioned_workers(lam: Any, native: httpx.Client) -> None:
    name = unique("aliasurl")
    versioned(lam, name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")

    made = lam.create_function_url_config(FunctionName=name, Qualifier="live", AuthType="NONE")
    assert made["FunctionUrl"].endswith(f"/fn/{name}/live/")
    assert made["FunctionArn"].endswith(f"function:{name}:live")
    assert httpx.get(made["FunctionUrl"]).json()["version"] == "v1"
    plain = lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert httpx.get(plain["FunctionUrl"]).json()["version"] == "v2"
    urls = lam.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]
    assert [u["FunctionUrl"] for u in urls] == [plain["FunctionUrl"], made["FunctionUrl"]]
    assert lam.get_function_url_config(FunctionName=name, Qualifier="live")[
        "FunctionUrl"] == made["FunctionUrl"]  # fmt: skip
    lam.delete_function_url_config(FunctionName=name, Qualifier="live")
    # Gone: the same address is now a path ("/live/") of the function's own URL.
    after = httpx.get(made["FunctionUrl"]).json()
    assert (after["version"], after["event"]["rawPath"]) == ("v2", "/live/")

    with pytest.raises(ClientError) as none_yet:
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert error_of(none_yet)[:2] == ("ProvisionedConcurrencyConfigNotFoundException", 404)
    put = lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=2
    )
    assert (put["Status"], put["RequestedProvisionedConcurrentExecutions"]) == ("READY", 2)
    assert native.get(f"/v1/functions/{name}/aliases/live").json()[
        "provisioned_concurrency"] == 2  # fmt: skip
    got = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert got["AllocatedProvisionedConcurrentExecutions"] == 2
    listed = lam.list_provisioned_concurrency_configs(FunctionName=name)
    assert [c["FunctionArn"].rsplit(":", 1)[1] for c in
            listed["ProvisionedConcurrencyConfigs"]] == ["live"]  # fmt: skip
    with pytest.raises(ClientError) as on_version:
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
        )
    code, status, message = error_of(on_version)
    assert (code, status) == ("InvalidParameterValueException", 400) and "alias" in message
    with pytest.raises(ClientError) as no_alias:
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="nope", ProvisionedConcurrentExecutions=1
        )
    assert error_of(no_alias)[:2] == ("ResourceNotFoundException", 404)
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert native.get(f"/v1/functions/{name}/aliases/live").json()[
        "provisioned_concurrency"] == 0  # fmt: skip
    with pytest.raises(ClientError) as gone:
        lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert error_of(gone)[:2] == ("ProvisionedConcurrencyConfigNotFoundException", 404)
    lam.delete_function(FunctionName=name)


def test_version_and_alias_mistakes_get_lambdas_exceptions_and_change_nothing(
    lambda_server: ServerProcess, lam: Any
) -> None:
    name = unique("vererr")
    versioned(lam, name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")

    def code_of(call: Any, **kwargs: Any) -> tuple[str, int, str]:
        with pytest.raises(ClientError) as exc:
            call(**kwargs)
        return error_of(exc)

    def alias(**kwargs: Any) -> tuple[str, int, str]:
        return code_of(lam.create_alias, FunctionName=name, **kwargs)

    assert alias(Name="live", FunctionVersion="2")[:2] == ("ResourceConflictException", 409)
    assert alias(Name="x", FunctionVersion="9")[:2] == ("ResourceNotFoundException", 404)
    code, status, message = alias(Name="x", FunctionVersion="$LATEST")
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "FunctionVersion" in message and "publish" in message
    assert alias(Name="123", FunctionVersion="1")[:2] == ("InvalidParameterValueException", 400)
    for weights in ({"2": 1.5}, {"2": 0.1, "3": 0.1}, {"1": 0.5}, {"2": 0}):
        code, status, message = alias(
            Name="x", FunctionVersion="1", RoutingConfig={"AdditionalVersionWeights": weights}
        )
        assert (code, status) == ("InvalidParameterValueException", 400), weights
    three = {"AdditionalVersionWeights": {"2": 3}}
    assert "RoutingConfig.AdditionalVersionWeights" in alias(
        Name="x", FunctionVersion="1", RoutingConfig=three)[2]  # fmt: skip
    assert alias(Name="x", FunctionVersion="1",
                 RoutingConfig={"AdditionalVersionWeights": {"9": 0.1}})[1] == 404  # fmt: skip
    assert code_of(lam.update_alias, FunctionName=name, Name="live",
                   RoutingConfig={"AdditionalVersionWeights": {"2": 2.0}})[1] == 400  # fmt: skip
    assert code_of(lam.get_alias, FunctionName=name, Name="nope")[:2] == (
        "ResourceNotFoundException", 404)  # fmt: skip
    assert code_of(lam.update_alias, FunctionName=name, Name="nope", FunctionVersion="1")[1] == 404
    assert code_of(lam.delete_alias, FunctionName=name, Name="nope")[1] == 404
    assert code_of(lam.list_aliases, FunctionName="no-such-function")[1] == 404
    assert code_of(lam.publish_version, FunctionName="no-such-function")[1] == 404
    # Nothing was half-written by the refusals.
    aliases = lam.list_aliases(FunctionName=name)["Aliases"]
    assert [(a["Name"], a["FunctionVersion"], a.get("RoutingConfig")) for a in aliases] == [
        ("live", "1", None)]  # fmt: skip

    # Deleting versions: not one an alias points to, not $LATEST, not by an alias name.
    code, status, message = code_of(lam.delete_function, FunctionName=name, Qualifier="1")
    assert (code, status) == ("ResourceConflictException", 409) and "live" in message
    assert code_of(lam.delete_function, FunctionName=name, Qualifier="$LATEST")[:2] == (
        "InvalidParameterValueException", 400)  # fmt: skip
    assert "DeleteAlias" in code_of(lam.delete_function, FunctionName=name, Qualifier="live")[2]
    assert code_of(lam.delete_function, FunctionName=name, Qualifier="7")[1] == 404
    lam.delete_function(FunctionName=name, Qualifier="2")
    assert [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)[
        "Versions"]] == ["$LATEST", "1"]  # fmt: skip
    assert code_of(lam.invoke, FunctionName=name, Qualifier="2")[:2] == (
        "ResourceNotFoundException", 404)  # fmt: skip
    assert code_of(lam.invoke, FunctionName=name, Qualifier="nope")[1] == 404
    assert code_of(lam.invoke, FunctionName=name, Qualifier="bad!")[:2] == (
        "InvalidParameterValueException", 400)  # fmt: skip
    assert code_of(lam.get_function, FunctionName=name, Qualifier="2")[1] == 404
    code, _, message = code_of(
        lam.put_function_event_invoke_config, FunctionName=name, Qualifier="live",
        MaximumRetryAttempts=1,
    )  # fmt: skip
    assert code == "InvalidParameterValueException" and "whole" in message

    # What boto3 would not send.
    fn = f"/2015-03-31/functions/{name}"

    def refused(method: str, path: str, body: bytes = b"") -> tuple[int, str, str]:
        response = signed(lambda_server, method, path, body)
        return response.status_code, response.headers["x-amzn-ErrorType"], response.json()[
            "pyfaasCode"]  # fmt: skip

    assert refused("POST", f"{fn}:1/invocations?Qualifier=2", b"{}") == (
        400, "InvalidParameterValueException", "invalid_qualifier")  # fmt: skip
    assert refused("GET", f"{fn}/versions?Marker=someday")[2] == "invalid_marker"
    assert refused("POST", f"{fn}/aliases", b'{"FunctionVersion": "1"}')[2] == (
        "invalid_alias_name")  # fmt: skip
    assert refused("POST", f"{fn}/aliases", b'{"Name": "y", "FunctionVersion": "1", "Z": 1}')[
        2] == "unsupported_field"  # fmt: skip
    for routing in (b"[1]", b'{"AdditionalVersionWeights": []}',
                    b'{"AdditionalVersionWeights": {"2": "lots"}}'):  # fmt: skip
        body = b'{"RoutingConfig": ' + routing + b"}"
        assert refused("PUT", f"{fn}/aliases/live", body) == (
            400, "InvalidParameterValueException", "invalid_routing"), routing  # fmt: skip
    assert refused("PUT", f"{fn}/code", b'{"ZipFile": "UEs=", "Publish": "yes"}')[0] == 400
    assert [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)[
        "Versions"]] == ["$LATEST", "1"]  # fmt: skip
    lam.delete_function(FunctionName=name)


# --- errors --------------------------------------------------------------------------------


def test_each_error_has_lambdas_exception_name(lam: Any) -> None:
    name = unique("errors")
    create(lam, name)

    def code_of(call: Any, **kwargs: Any) -> tuple[str, int, str]:
        with pytest.raises(ClientError) as exc:
            call(**kwargs)
        return error_of(exc)

    assert code_of(lam.get_function, FunctionName="no-such-function")[:2] == (
        "ResourceNotFoundException", 404)  # fmt: skip
    assert code_of(lam.invoke, FunctionName=name, Qualifier="3")[:2] == (
        "ResourceNotFoundException", 404)  # fmt: skip
    code, status, message = code_of(
        lam.create_function, FunctionName=unique("mem"), Runtime="python3.11", Role=ROLE,
        Handler="handler.handler", Code={"ZipFile": zip_of({"handler.py": HANDLER})},
        MemorySize=12000,
    )  # fmt: skip
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "MemorySize 12000 is outside 128-10240 MB" in message
    assert code_of(create, lam=lam, name=unique("rt"), Runtime="python2.7")[0] == (
        "InvalidParameterValueException")  # fmt: skip
    assert code_of(create, lam=lam, name=name)[:2] == ("ResourceConflictException", 409)
    assert code_of(lam.invoke, FunctionName=name, Payload=b"not json")[:2] == (
        "InvalidRequestContentException", 400)  # fmt: skip
    big = json.dumps({"x": "a" * 300_000}).encode()
    assert code_of(lam.invoke, FunctionName=name, InvocationType="Event", Payload=big)[:2] == (
        "RequestTooLargeException", 413)  # fmt: skip
    assert code_of(lam.invoke, FunctionName=name, ClientContext="bm90IGpzb24=")[:2] == (
        "InvalidRequestContentException", 400)  # fmt: skip
    code, status, message = code_of(
        lam.add_permission, FunctionName=name, StatementId="s1", Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
    )  # fmt: skip
    assert (code, status) == ("UnsupportedOperationException", 400)
    assert "AddPermission" in message
    assert "ListLayers" in code_of(lam.list_layers)[2]
    code, _, message = code_of(
        lam.create_function, FunctionName=unique("s3"), Runtime="python3.11", Role=ROLE,
        Handler="handler.handler", Code={"S3Bucket": "my-bucket", "S3Key": "code.zip"},
    )  # fmt: skip
    assert code == "InvalidParameterValueException" and "ZipFile" in message
    code, _, message = code_of(
        create, lam=lam, name=unique("vpc"), VpcConfig={"SubnetIds": ["s-1"]}
    )
    assert code == "InvalidParameterValueException" and "VpcConfig" in message
    # Nothing was half-written by the refused creates.
    names = [f["FunctionName"] for f in lam.list_functions(MaxItems=10000)["Functions"]]
    assert not [n for n in names if n.startswith(("mem-", "rt-", "s3-", "vpc-"))]

    # Throttled: TooManyRequestsException (also in the concurrency test, with its reason).
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    assert code_of(lam.invoke, FunctionName=name)[:2] == ("TooManyRequestsException", 429)
    lam.delete_function(FunctionName=name)


def signed(
    server: ServerProcess, method: str, path: str, body: bytes = b"", **headers: str
) -> httpx.Response:
    """A request signed with botocore's own SigV4 signer, for inputs boto3 would not send."""
    from botocore.auth import SigV4Auth
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=f"{server.url}{path}", data=body, headers=headers)
    SigV4Auth(Credentials(KEY_ID, SECRET), "lambda", "us-east-1").add_auth(request)
    return httpx.request(method, request.url, headers=dict(request.headers.items()), content=body)


def test_inputs_boto3_would_not_send_get_lambda_errors_too(
    lambda_server: ServerProcess, lam: Any
) -> None:
    name = unique("raw")
    create(lam, name)
    fn = f"/2015-03-31/functions/{name}"

    def refused(response: httpx.Response) -> tuple[int, str, str]:
        body = response.json()
        return response.status_code, response.headers["x-amzn-ErrorType"], body["pyfaasCode"]

    not_base64 = json.dumps(
        {"FunctionName": unique("b64"), "Role": ROLE, "Code": {"ZipFile": "%%%"}}
    ).encode()
    assert refused(signed(lambda_server, "POST", "/2015-03-31/functions", not_base64)) == (
        400, "InvalidParameterValueException", "invalid_zip_file")  # fmt: skip
    no_name = json.dumps({"Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}}).encode()
    assert refused(signed(lambda_server, "POST", "/2015-03-31/functions", no_name))[2] == (
        "invalid_name")  # fmt: skip
    assert refused(signed(lambda_server, "PUT", f"{fn}/configuration", b"[1, 2]")) == (
        400, "InvalidRequestContentException", "invalid_json")  # fmt: skip
    tail = signed(lambda_server, "POST", f"{fn}/invocations", b"{}", **{"X-Amz-Log-Type": "All"})
    assert refused(tail) == (400, "InvalidParameterValueException", "invalid_log_type")
    kind = signed(
        lambda_server, "POST", f"{fn}/invocations", b"{}", **{"X-Amz-Invocation-Type": "Later"}
    )
    assert refused(kind)[2] == "invalid_invocation_type"
    streaming = json.dumps({"AuthType": "NONE", "InvokeMode": "RESPONSE_STREAM"}).encode()
    assert refused(signed(lambda_server, "POST", f"/2021-10-31/functions/{name}/url", streaming))[
        2] == "invalid_invoke_mode"  # fmt: skip
    listing = signed(lambda_server, "GET", "/2015-03-31/event-source-mappings?Marker=bogus")
    assert refused(listing) == (400, "InvalidParameterValueException", "invalid_marker")
    assert refused(signed(lambda_server, "GET", "/2015-03-31/functions?MaxItems=0"))[2] == (
        "invalid_limit")  # fmt: skip
    # A superscript two is a digit to str.isdigit(), not to int(): a 400, not a 500.
    assert refused(signed(lambda_server, "GET", "/2015-03-31/functions?MaxItems=%C2%B2"))[2] == (
        "invalid_limit")  # fmt: skip
    no_topic = json.dumps(
        {"EventSourceArn": f"arn:pyfaas:redis:::{REDIS_URL}", "FunctionName": name}
    ).encode()
    assert refused(signed(lambda_server, "POST", "/2015-03-31/event-source-mappings", no_topic))[
        2] == "invalid_source_name"  # fmt: skip
    nowhere = signed(lambda_server, "GET", "/2015-03-31/nothing-here")
    assert refused(nowhere) == (400, "UnsupportedOperationException", "unsupported_operation")
    assert "GET /2015-03-31/nothing-here" in nowhere.json()["message"]
    wrong_method = signed(lambda_server, "PATCH", fn)
    assert refused(wrong_method)[1] == "UnsupportedOperationException"
    lam.delete_function(FunctionName=name)


def test_a_server_side_failure_reaches_botocore_as_service_exception() -> None:
    """The rendering of a 5xx, read by botocore's own rest-json parser (a running server
    cannot be made to fail on purpose)."""
    response = lambda_error_response(ServiceUnavailable("the server is stopping"))
    parsed = create_parser("rest-json").parse(
        {
            "status_code": response.status_code,
            "headers": dict(response.headers),
            "body": bytes(response.body),
        },
        None,
    )
    assert parsed["Error"]["Code"] == "ServiceException"
    assert parsed["Error"]["Message"] == "the server is stopping"
    assert response.status_code == 503


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    segments=st.lists(_TEXT, max_size=4),
    query=st.lists(st.tuples(_TEXT, _TEXT), max_size=4),
    header=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
    body=st.binary(max_size=64),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
)
def test_the_verifier_accepts_what_botocore_signs_and_nothing_else(
    segments: list[str], query: list[tuple[str, str]], header: str, body: bytes, method: str
) -> None:
    """Property: any request botocore's signer signs verifies; the same request with another
    body, path or secret does not."""
    from urllib.parse import quote

    from botocore.auth import SigV4Auth
    from botocore.credentials import Credentials

    from pyfaas.api.lambda_api.errors import LambdaApiError
    from pyfaas.api.lambda_api.sigv4 import SigV4Verifier

    path = "/" + "/".join(quote(s, safe="") for s in segments)
    qs = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query)
    url = f"http://127.0.0.1:9/2015-03-31{path}" + (f"?{qs}" if qs else "")
    request = AWSRequest(method=method, url=url, data=body, headers={"X-Custom": header})
    SigV4Auth(Credentials(KEY_ID, SECRET), "lambda", "us-east-1").add_auth(request)
    sent = {k.lower(): v for k, v in request.headers.items()}
    sent["host"] = "127.0.0.1:9"
    verifier = SigV4Verifier({KEY_ID: SECRET})
    claim = verifier.parse(sent)
    assert claim is not None
    parts = urlsplit(url)

    def check(raw_path: str, payload: bytes, verifier: SigV4Verifier = verifier) -> None:
        verifier.verify(claim, method=method, raw_path=raw_path, raw_query=parts.query,
                        headers=[(k.encode(), v.encode()) for k, v in sent.items()],
                        body=payload)  # fmt: skip

    check(parts.path, body)
    with pytest.raises(LambdaApiError):
        check(parts.path, body + b"x")
    with pytest.raises(LambdaApiError):
        check(parts.path + "x", body)
    with pytest.raises(LambdaApiError):
        check(parts.path, body, SigV4Verifier({KEY_ID: SECRET + "x"}))


# --- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amz_date",
    ["", "2026-12-02T01:00:00Z", "20261202T010000", "2026122T010203Z", "20261340T000000Z",
     "20261202T250000Z", "20260230T000000Z", "20261202t010000z"],
)  # fmt: skip
def test_a_malformed_x_amz_date_is_an_incomplete_signature(
    lambda_server: ServerProcess, amz_date: str
) -> None:
    from botocore.auth import SigV4Auth
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=f"{lambda_server.url}/2015-03-31/functions")
    SigV4Auth(Credentials(KEY_ID, SECRET), "lambda", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    headers["X-Amz-Date"] = amz_date
    answer = httpx.get(request.url, headers=headers)
    assert answer.status_code == 400
    assert answer.headers["x-amzn-ErrorType"] == "IncompleteSignatureException"
    assert "X-Amz-Date" in answer.json()["message"]


def test_signatures_are_verified_and_the_native_token_keeps_working(
    lambda_server: ServerProcess,
) -> None:
    url = lambda_server.url
    with pytest.raises(ClientError) as wrong_secret:
        client_of(url, secret="not-the-secret").list_functions()
    assert error_of(wrong_secret)[:2] == ("InvalidSignatureException", 403)
    with pytest.raises(ClientError) as unknown_key:
        client_of(url, key="AKIAUNKNOWN").list_functions()
    assert error_of(unknown_key)[:2] == ("UnrecognizedClientException", 403)

    unsigned = httpx.get(f"{url}/2015-03-31/functions")
    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    bearer = httpx.get(f"{url}/2015-03-31/functions", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 400
    assert bearer.headers["x-amzn-ErrorType"] == "IncompleteSignatureException"

    # A body changed after signing is caught.
    from botocore.auth import SigV4Auth
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST", url=f"{url}/2015-03-31/functions/x/invocations", data=b'{"a": 1}'
    )
    SigV4Auth(Credentials(KEY_ID, SECRET), "lambda", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    tampered = httpx.post(request.url, headers=headers, content=b'{"a": 2}')
    assert tampered.status_code == 403
    assert tampered.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    genuine = httpx.post(request.url, headers=headers, content=b'{"a": 1}')
    assert genuine.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    # Signed correctly, but in 2020: botocore's signing steps with a fixed timestamp.
    old = AWSRequest(method="GET", url=f"{url}/2015-03-31/functions")
    auth = SigV4Auth(Credentials(KEY_ID, SECRET), "lambda", "us-east-1")
    old.context["timestamp"] = "20200101T000000Z"
    auth._modify_request_before_signing(old)
    signature = auth.signature(auth.string_to_sign(old, auth.canonical_request(old)), old)
    auth._inject_signature_to_request(old, signature)
    expired = httpx.get(old.url, headers=dict(old.headers.items()))
    assert expired.status_code == 403 and "expired" in expired.json()["message"]

    # The token is also the secret of access key "pyfaas"; /v1 still takes the bearer token.
    assert "Functions" in client_of(url, key="pyfaas", secret=TOKEN).list_functions()
    assert httpx.get(f"{url}/v1/functions").status_code == 401
    with lambda_server.client() as native:
        assert native.get("/v1/functions").status_code == 200


def test_dev_mode_accepts_any_key_on_loopback_and_warns(tmp_path: Path) -> None:
    with serving(tmp_path / "dev", {}) as dev:
        lam = client_of(dev.url, key="anything", secret="at-all")
        name = unique("dev")
        create(lam, name)
        assert lam.invoke(FunctionName=name)["StatusCode"] == 200
        assert httpx.get(f"{dev.url}/2015-03-31/functions").status_code == 200
        assert "Lambda API in dev mode" in dev.output()


# --- the AWS CLI ---------------------------------------------------------------------------


def aws(server: ServerProcess, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
        "AWS_PAGER": "",
        "AWS_MAX_ATTEMPTS": "1",
    }
    return subprocess.run(
        [str(BIN / "aws"), "--endpoint-url", server.url, "lambda", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def aws_create(server: ServerProcess, tmp: Path, name: str) -> subprocess.CompletedProcess[str]:
    """``aws lambda create-function`` of HANDLER, checked."""
    bundle = tmp / "code.zip"
    bundle.write_bytes(zip_of({"handler.py": HANDLER}))
    made = aws(
        server, tmp, "create-function", "--function-name", name,
        "--runtime", "python3.12", "--role", ROLE, "--handler", "handler.handler",
        "--zip-file", f"fileb://{bundle}",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return made


def test_aws_cli_creates_lists_invokes_and_deletes(
    lambda_server: ServerProcess, tmp_path: Path
) -> None:
    name = unique("cli")
    made = aws_create(lambda_server, tmp_path, name)
    assert json.loads(made.stdout)["State"] == "Active"
    listed = aws(lambda_server, tmp_path, "list-functions")
    assert name in [f["FunctionName"] for f in json.loads(listed.stdout)["Functions"]]
    result = tmp_path / "out.json"
    invoked = aws(
        lambda_server, tmp_path, "invoke", "--function-name", name,
        "--payload", '{"from": "cli"}', str(result),
    )  # fmt: skip
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)["StatusCode"] == 200
    assert json.loads(result.read_text())["event"] == {"from": "cli"}
    assert aws(lambda_server, tmp_path, "delete-function", "--function-name", name).returncode == 0
    missing = aws(lambda_server, tmp_path, "get-function", "--function-name", name)
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr and "Traceback" not in missing.stderr


def test_aws_cli_publishes_a_version_and_invokes_it_through_an_alias(
    lambda_server: ServerProcess, tmp_path: Path
) -> None:
    name = unique("clipub")
    aws_create(lambda_server, tmp_path, name)
    published = aws(
        lambda_server, tmp_path, "publish-version", "--function-name", name,
        "--description", "from the cli",
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["Version"] == "1"
    alias = aws(
        lambda_server, tmp_path, "create-alias", "--function-name", name, "--name", "live",
        "--function-version", "1",
    )  # fmt: skip
    assert alias.returncode == 0, alias.stderr
    result = tmp_path / "out.json"
    invoked = aws(
        lambda_server, tmp_path, "invoke", "--function-name", name, "--qualifier", "live",
        str(result),
    )  # fmt: skip
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)["ExecutedVersion"] == "1"
    assert json.loads(result.read_text())["arn"].endswith(f"{name}:live")
    listed = aws(lambda_server, tmp_path, "list-versions-by-function", "--function-name", name)
    assert [v["Version"] for v in json.loads(listed.stdout)["Versions"]] == ["$LATEST", "1"]
    refused = aws(lambda_server, tmp_path, "delete-function", "--function-name", name,
                  "--qualifier", "1")  # fmt: skip
    assert refused.returncode != 0
    assert "ResourceConflictException" in refused.stderr and "Traceback" not in refused.stderr
    missing = aws(lambda_server, tmp_path, "publish-version", "--function-name", name + "-x")
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr and "Traceback" not in missing.stderr
    assert aws(lambda_server, tmp_path, "delete-function", "--function-name", name).returncode == 0


# --- code written for AWS Lambda ------------------------------------------------------------

POWERTOOLS_APP = """
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

logger = Logger(service="shop")
app = APIGatewayHttpResolver()


@app.get("/items/<item_id>")
def get_item(item_id):
    logger.info("fetching item", extra={"item_id": item_id})
    return {"id": item_id, "q": app.current_event.get_query_string_value("q")}


@app.post("/items")
def add_item():
    return {"added": app.current_event.json_body}


@logger.inject_lambda_context
def handler(event, context):
    return app.resolve(event, context)
"""


def test_a_powertools_handler_runs_unchanged_behind_its_function_url(
    lam: Any, native: httpx.Client
) -> None:
    name = unique("powertools")
    create(lam, name, code=POWERTOOLS_APP)
    url = lam.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    got = httpx.get(url + "items/42?q=blue")
    assert got.status_code == 200, got.text
    assert got.json() == {"id": "42", "q": "blue"}
    posted = httpx.post(url + "items", json={"name": "lamp"})
    assert posted.status_code == 200 and posted.json() == {"added": {"name": "lamp"}}
    assert httpx.get(url + "nowhere").status_code == 404

    def logged() -> list[dict[str, Any]]:
        records = native.get(f"/v1/functions/{name}/logs").json()["records"]
        return [s["fields"] for r in records for s in r.get("structured", [])]

    wait_for(lambda: any(s.get("message") == "fetching item" for s in logged()),
             what="powertools' JSON log line")  # fmt: skip
    line = next(s for s in logged() if s.get("message") == "fetching item")
    assert line["service"] == "shop" and line["item_id"] == "42"
    assert line["function_name"] == name
    lam.delete_function(FunctionName=name)


# --- configuration -------------------------------------------------------------------------


def test_access_keys_come_from_env_or_toml_and_bad_ones_stop_the_server(tmp_path: Path) -> None:
    env = {"PYFAAS_CONFIG": str(tmp_path / "absent.toml"), "PYFAAS_ACCESS_KEYS": "AK1:s1, AK2:s:2"}
    assert ServerConfig.load(env=env).access_keys == (("AK1", "s1"), ("AK2", "s:2"))
    toml = tmp_path / "pyfaas.toml"
    toml.write_text('[server]\naccess_keys = {AK3 = "s3"}\n')
    assert ServerConfig.load(file=toml, env={}).access_keys == (("AK3", "s3"),)
    with pytest.raises(ConfigurationError, match="access_keys"):
        ServerConfig.load(env={**env, "PYFAAS_ACCESS_KEYS": "no-secret"})
    refused = run_cli(
        "serve", "--port", "0", env={"PYFAAS_HOME": str(tmp_path), "PYFAAS_ACCESS_KEYS": "x y:z"}
    )
    assert refused.returncode != 0
    assert "access_keys" in refused.stderr and "Traceback" not in refused.stderr
