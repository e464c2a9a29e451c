"""Reading the lines of a log record: JSON lines, text filters, loss markers."""

from __future__ import annotations

import re
from typing import Any

import orjson

from pyfaas.model import LogRecord

# What a worker appends when an invocation wrote more than log_bytes_per_invocation
# (runtime/capture.py and executor/worker.py write it).
_TRUNCATED = re.compile(r"\n\[pyfaas: (\d+) bytes of log output truncated\]\n\Z")


def truncated_bytes(logs: str) -> int:
    """How many bytes the worker cut from an invocation's output (0 when none)."""
    if not logs.endswith("truncated]\n"):
        return 0
    found = _TRUNCATED.search(logs, max(0, len(logs) - 100))
    return int(found.group(1)) if found else 0


def dropped_marker(size: int) -> str:
    """The line that stands for handler output the server's log buffer had no room for."""
    return f"[pyfaas: {size} bytes of log output dropped: the server's log buffer was full]\n"


def structured_lines(text: str) -> list[dict[str, Any]]:
    """``[{"line": n, "fields": {...}}]`` for each line of ``text`` that is a JSON object.

    ``n`` counts lines from 0. A line is structured only when all of it parses as one JSON
    object; anything else (arrays, numbers, broken JSON) stays plain text.
    """
    found: list[dict[str, Any]] = []
    if "{" not in text:
        return found
    for n, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if not (stripped.startswith("{") and stripped.endswith("}")):
            continue
        try:
            fields = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            continue
        if isinstance(fields, dict):
            found.append({"line": n, "fields": fields})
    return found


def only_matching_lines(record: LogRecord, needle: str) -> LogRecord:
    """``record`` with only the lines of its text that contain ``needle``."""
    kept = [line for line in record.text.splitlines(keepends=True) if needle in line]
    text = "".join(kept)
    if text and not text.endswith("\n"):
        text += "\n"
    return LogRecord(record.function, record.request_id, record.timestamp, text, record.id)


def record_view(record: LogRecord, needle: str | None = None) -> dict[str, object]:
    """A record as the API returns it: its fields and its JSON lines as ``structured``.

    With ``needle`` (a text filter), the text holds only the lines that contain it.
    """
    if needle:
        record = only_matching_lines(record, needle)
    view = record.to_dict()
    view["structured"] = structured_lines(record.text)
    return view
