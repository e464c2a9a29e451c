"""How deploys and invocations show in a notebook (HTML) and in a terminal (text)."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from types import CodeType
from typing import Any

from pyfaas.sdk.client import InvokeResponse
from pyfaas.sdk.remote_exceptions import user_frames

_BOX = "border-left:4px solid {color};padding:4px 10px;margin:2px 0;font-family:monospace"


class Deployed:
    """A function the ``%%pyfaas deploy`` magic deployed; ``.function`` calls it."""

    def __init__(self, function: Any, outcome: Mapping[str, Any], shipped: str) -> None:
        self.function = function
        self.outcome = dict(outcome)
        self.shipped = shipped

    @property
    def state(self) -> str:
        if self.outcome.get("created"):
            return "Created"
        return "Updated" if self.outcome.get("changed") else "Unchanged"

    def _facts(self) -> list[tuple[str, str]]:
        o = self.outcome
        return [
            ("handler", str(self.function.__qualname__)),
            ("shipped", "by value (cloudpickle)" if self.shipped == "value" else "as source"),
            ("memory", f"{o.get('memory_mb')} MB"),
            ("timeout", f"{o.get('timeout_s')} s"),
            ("code", f"{str(o.get('code_sha256', ''))[:12]}, {o.get('code_size', 0):,} bytes"),
            ("layer", str(o.get("layer_sha256") or "-")[:12]),
        ]

    def __repr__(self) -> str:
        facts = ", ".join(f"{k} {v}" for k, v in self._facts())
        return f"✓ {self.state} {self.function.name} ({facts})"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>"
            for k, v in self._facts()
        )
        title = f"✓ {self.state} <b>{html.escape(self.function.name)}</b>"
        return f'<div style="{_BOX.format(color="#2e7d32")}">{title}<table>{rows}</table></div>'


class Invocation:
    """The outcome of ``%pyfaas invoke``: the result, or the function's error."""

    def __init__(
        self, name: str, response: InvokeResponse, shipped_code: CodeType | None = None
    ) -> None:
        self.name = name
        self.response = response
        self._shipped_code = shipped_code
        self.value: Any = _json_or_text(response.body)

    @property
    def failed(self) -> bool:
        return self.response.function_error is not None

    def _timing(self) -> str:
        r = self.response
        parts = [f"request {r.request_id}"]
        if r.duration_ms is not None:
            parts.append(f"{r.duration_ms:.1f} ms")
        if r.init_duration_ms is not None:
            parts.append(f"cold start {r.init_duration_ms:.1f} ms")
        return ", ".join(parts)

    def _error_text(self) -> tuple[str, str]:
        error = self.value if isinstance(self.value, dict) else {}
        headline = f"{error.get('errorType', 'Error')}: {error.get('errorMessage', self.value)}"
        return headline, user_frames(error, self._shipped_code)

    def __repr__(self) -> str:
        if self.failed:
            headline, stack = self._error_text()
            return f"✗ {self.name} failed ({self._timing()})\n{stack}{headline}"
        return json.dumps(self.value, indent=2, default=str) + f"\n({self._timing()})"

    def _repr_html_(self) -> str:
        if self.failed:
            headline, stack = self._error_text()
            return (
                f'<div style="{_BOX.format(color="#c62828")}">✗ <b>{html.escape(self.name)}</b>'
                f" failed <small>({html.escape(self._timing())})</small>"
                f"<pre>{html.escape(stack)}<b>{html.escape(headline)}</b></pre></div>"
            )
        shown = json.dumps(self.value, indent=2, default=str)
        return (
            f'<div style="{_BOX.format(color="#1565c0")}"><b>{html.escape(self.name)}</b> '
            f"<small>({html.escape(self._timing())})</small>"
            f"<pre>{html.escape(shown)}</pre></div>"
        )


def _json_or_text(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")
