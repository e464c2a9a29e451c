"""IPython magics (``%load_ext pyfaas``):

    %pyfaas connect URL [TOKEN]            the server for this session (default PYFAAS_URL)
    %%pyfaas deploy NAME [--memory MB] [--timeout S] [--requirements a,b]
                         [--serializer json|pickle] [--env KEY=VALUE]
    <a cell defining the handler: the function named ``handler``, else the last one defined>
    %pyfaas invoke NAME {"json": "event"}

A bad command is a UsageError (one line, no traceback); results and errors of functions
display as HTML in a notebook, as text in a terminal.
"""

from __future__ import annotations

import argparse
import ast
import json
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand

from pyfaas.model import PyfaasError
from pyfaas.sdk.app import App, Function
from pyfaas.sdk.client import Client
from pyfaas.sdk.display import Deployed, Invocation

USAGE = (
    "usage: %pyfaas invoke NAME [JSON] | %pyfaas connect URL [TOKEN] | "
    "%%pyfaas deploy NAME [--memory MB] [--timeout S] [--requirements a,b] "
    "[--serializer json|pickle] [--env KEY=VALUE]"
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise UsageError(f"{message}\n{USAGE}")


def _deploy_parser() -> _Parser:
    parser = _Parser(prog="%%pyfaas deploy", add_help=False)
    parser.add_argument("name")
    parser.add_argument("--memory", type=int, default=128)
    parser.add_argument("--timeout", type=int, default=3)
    parser.add_argument("--requirements", default="")
    parser.add_argument("--serializer", default="json", choices=["json", "pickle"])
    parser.add_argument("--env", action="append", default=[])
    return parser


@magics_class
class PyfaasMagics(Magics):
    """``%pyfaas`` and ``%%pyfaas``."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.client: Client | None = None
        self._deployed: dict[str, Function[Any, Any]] = {}  # by this session: name -> function

    def _client(self) -> Client:
        if self.client is None:
            self.client = Client()
        return self.client

    @no_var_expand
    @line_cell_magic
    def pyfaas(self, line: str, cell: str | None = None) -> Any:
        command, _, rest = line.strip().partition(" ")
        try:
            if command == "deploy":
                if cell is None:
                    raise UsageError("deploy is a cell magic: %%pyfaas deploy NAME, then the code")
                return self._deploy(rest, cell)
            if cell is not None:
                raise UsageError(
                    f"%%pyfaas {command or '(nothing)'} is not a cell command\n{USAGE}"
                )
            if command == "invoke":
                return self._invoke(rest)
            if command == "connect":
                return self._connect(rest)
        except PyfaasError as exc:
            raise UsageError(f"{exc.message} [{exc.code}]") from None
        raise UsageError(f"unknown command {command!r}\n{USAGE}")

    def _connect(self, rest: str) -> None:
        url, _, token = rest.strip().partition(" ")
        if not url:
            raise UsageError(f"connect needs the server's URL\n{USAGE}")
        self.client = Client(url, token.strip() or None)
        print(f"pyfaas: functions deploy to and run on {self.client.url}")

    def _invoke(self, rest: str) -> Invocation:
        name, _, payload = rest.strip().partition(" ")
        if not name:
            raise UsageError(f"invoke needs a function name\n{USAGE}")
        payload = payload.strip() or "{}"
        try:
            json.loads(payload)
        except ValueError as exc:
            raise UsageError(f"the event is not valid JSON ({exc}): {payload[:80]}") from None
        response = self._client().invoke_raw(name, payload.encode())
        deployed = self._deployed.get(name)
        return Invocation(name, response, deployed.shipped_code() if deployed else None)

    def _deploy(self, rest: str, cell: str) -> Deployed:
        args = _deploy_parser().parse_args(rest.split())
        environment = {}
        for pair in args.env:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise UsageError(f"--env takes KEY=VALUE, got {pair!r}")
            environment[key] = value
        shell = self.shell
        assert shell is not None
        name = _handler_name(shell.transform_cell(cell))  # type: ignore[no-untyped-call]
        outcome = shell.run_cell(cell)  # type: ignore[no-untyped-call]
        if not outcome.success:
            raise UsageError("the cell failed (see above): nothing was deployed")
        client = self._client()
        app = App("notebook", client=client)
        function = app.function(
            name=args.name,
            memory=args.memory,
            timeout=args.timeout,
            requirements=[r.strip() for r in args.requirements.split(",") if r.strip()],
            serializer=args.serializer,
            environment=environment,
        )(shell.user_ns[name])
        bundle = function.bundle()
        result = client.deploy(function.config(), bundle.zip())
        self._deployed[function.name] = function
        return Deployed(function, result, bundle.shipped)


def _handler_name(source: str) -> str:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise UsageError(f"the cell is not valid Python: {exc}") from None
    names = [
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    if not names:
        raise UsageError("the cell defines no function to deploy (def handler(event): ...)")
    return "handler" if "handler" in names else names[-1]


def register(ipython: Any) -> None:
    """Called by ``%load_ext pyfaas``."""
    ipython.register_magics(PyfaasMagics)
