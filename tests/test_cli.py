"""The README's story, through the installed `pyfaas` command."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from conftest import ServerProcess, free_port, run_cli

HELLO = """
import logging
logger = logging.getLogger()
logger.setLevel(logging.INFO)

def handler(event, context):
    logger.info("greeting %s", event.get("name"))
    return {"message": "Hello, " + event.get("name", "world") + "!"}
"""


def make_function_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "hello"
    directory.mkdir()
    (directory / "handler.py").write_text(HELLO)
    (directory / "__pycache__").mkdir()
    (directory / "__pycache__" / "junk.pyc").write_bytes(b"junk")
    return directory


def test_deploy_invoke_logs_ls_show_rm(server: ServerProcess, tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    directory = make_function_dir(tmp_path)

    deployed = run_cli("deploy", str(directory), "--name", name, server=server)
    assert deployed.returncode == 0, deployed.stderr
    assert f"Created {name}" in deployed.stderr

    invoked = run_cli("invoke", name, "-p", '{"name": "Ada"}', server=server)
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout) == {"message": "Hello, Ada!"}

    payload_file = tmp_path / "event.json"
    payload_file.write_text('{"name": "Grace"}')
    from_file = run_cli("invoke", name, "-p", f"@{payload_file}", server=server)
    assert json.loads(from_file.stdout) == {"message": "Hello, Grace!"}
    from_stdin = run_cli("invoke", name, "-p", "-", input=b'{"name": "Alan"}', server=server)
    assert json.loads(from_stdin.stdout) == {"message": "Hello, Alan!"}

    logs = run_cli("logs", name, server=server)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.count("START RequestId: ") == 3
    assert "greeting Ada" in logs.stdout
    assert logs.stdout.count("REPORT RequestId: ") == 3

    listed = run_cli("ls", server=server)
    assert name in listed.stdout
    listed_json = json.loads(run_cli("ls", "--json", server=server).stdout)
    assert name in [f["name"] for f in listed_json]

    shown = run_cli("show", name, server=server)
    assert "handler.handler" in shown.stdout
    assert json.loads(run_cli("show", name, "--json", server=server).stdout)["name"] == name

    redeployed = run_cli("deploy", str(directory), "--name", name, server=server)
    assert f"Unchanged {name}" in redeployed.stderr
    refused = run_cli("deploy", str(directory), "--name", name, "--no-overwrite", server=server)
    assert refused.returncode == 1
    assert "already exists" in refused.stderr

    removed = run_cli("rm", name, server=server)
    assert removed.returncode == 0
    assert name not in run_cli("ls", server=server).stdout


def test_deploy_from_a_zip_with_options(server: ServerProcess, tmp_path: Path) -> None:
    from conftest import zip_bytes

    archive = tmp_path / "bundle.zip"
    archive.write_bytes(
        zip_bytes({"app.py": "import os\ndef main(e, c):\n    return os.environ['MODE']\n"})
    )
    name = f"zip-{uuid.uuid4().hex[:8]}"
    deployed = run_cli(
        "deploy",
        str(archive),
        "-n",
        name,
        "--handler",
        "app.main",
        "--memory",
        "256",
        "--timeout",
        "10",
        "-e",
        "MODE=fast",
        server=server,
    )
    assert deployed.returncode == 0, deployed.stderr
    assert json.loads(run_cli("invoke", name, server=server).stdout) == "fast"
    info = json.loads(run_cli("show", name, "--json", server=server).stdout)
    assert (info["memory_mb"], info["timeout_s"]) == (256, 10)


def test_friendly_errors_without_tracebacks(server: ServerProcess, tmp_path: Path) -> None:
    down = run_cli("ls", env={"PYFAAS_URL": f"http://127.0.0.1:{free_port()}"})
    assert down.returncode == 1
    assert "cannot reach the pyfaas server" in down.stderr
    assert "Traceback" not in down.stderr

    unknown = run_cli("invoke", "no-such-function", server=server)
    assert unknown.returncode == 1
    assert "does not exist" in unknown.stderr and "function_not_found" in unknown.stderr

    name = f"bad-payload-{uuid.uuid4().hex[:6]}"
    run_cli("deploy", str(make_function_dir(tmp_path)), "-n", name, server=server)
    bad = run_cli("invoke", name, "-p", "{oops", server=server)
    assert bad.returncode == 1
    assert "not valid JSON" in bad.stderr

    missing = run_cli("deploy", str(tmp_path / "nowhere"), server=server)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    bad_env = run_cli("deploy", str(tmp_path / "hello"), "-e", "NOEQUALS", server=server)
    assert bad_env.returncode == 1 and "KEY=VALUE" in bad_env.stderr
    for result in (unknown, bad, missing, bad_env):
        assert "Traceback" not in result.stderr


def test_a_function_error_prints_the_error_and_exits_nonzero(
    server: ServerProcess, tmp_path: Path
) -> None:
    directory = tmp_path / "boom"
    directory.mkdir()
    (directory / "handler.py").write_text("def handler(e, c):\n    raise KeyError('k')\n")
    name = f"boom-{uuid.uuid4().hex[:6]}"
    assert run_cli("deploy", str(directory), "-n", name, server=server).returncode == 0
    result = run_cli("invoke", name, server=server)
    assert result.returncode == 1
    assert json.loads(result.stdout)["errorType"] == "KeyError"
    assert "function error: KeyError" in result.stderr


def test_logs_follow_prints_new_invocations_as_they_happen(
    server: ServerProcess, tmp_path: Path
) -> None:
    import os
    import select
    import subprocess

    from conftest import PYFAAS

    name = f"follow-{uuid.uuid4().hex[:6]}"
    assert (
        run_cli("deploy", str(make_function_dir(tmp_path)), "-n", name, server=server).returncode
        == 0
    )
    follower = subprocess.Popen(
        [PYFAAS, "logs", name, "--follow"],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYFAAS_URL": server.url},
    )
    try:
        invoked = run_cli("invoke", name, "-p", '{"name": "Follower"}', server=server)
        assert invoked.returncode == 0
        seen = b""
        deadline = time.monotonic() + 20
        assert follower.stdout is not None
        while b"REPORT RequestId" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([follower.stdout], [], [], 0.5)
            if ready:
                seen += os.read(follower.stdout.fileno(), 65536)
        assert b"greeting Follower" in seen
        assert b"REPORT RequestId" in seen
    finally:
        follower.kill()
        follower.wait()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--url", "http://127.0.0.1:1", "ls"), "No such option"),
        (("ls", "--no-such-flag"), "No such option"),
        (("invoke",), "Missing argument"),
        (("no-such-command",), "No such command"),
    ],
)
def test_usage_errors_are_one_message_not_a_traceback(args: tuple[str, ...], says: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
