"""``pyfaas deploy app.py``: deploy the SDK Apps a Python file defines."""

from __future__ import annotations

from pathlib import Path

from pyfaas.cli.client import ApiClient, CliError, cli_error
from pyfaas.model import PyfaasError


def deploy_python_app(path: Path, client: ApiClient, *, options_given: list[str]) -> None:
    """Import ``path`` and deploy every function of every App in it (each reports on
    stderr). Options of directory deploys do not apply: they are set in @app.function."""
    from pyfaas.sdk.loader import load_apps

    if options_given:
        raise CliError(
            f"{', '.join(options_given)} do not apply to a Python app file: set them in "
            "@app.function(...) (name=, memory=, timeout=, environment=)"
        )
    try:
        for app in load_apps(path):
            app.connect(client.sdk)
            app.deploy()
    except PyfaasError as exc:
        raise cli_error(exc) from None
