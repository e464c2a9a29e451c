"""Where a key of a manifest is written (KeyLines); for TOML (tomllib keeps no lines):

A light scan of the text, good enough for pointing a person at the line to fix: table
headers (``[a.b]``, ``[[a.b]]``, counting each array of tables) and ``key = value`` lines
(dotted keys too) outside multi-line strings. A key inside an inline table or a multi-line
array is reported at the line of the key that holds it.
"""

from __future__ import annotations

import re

Path = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*(.+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_STRINGS = re.compile(r""""(?:[^"\\]|\\.)*"|'[^']*'""")
_PART = re.compile(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""")


class KeyLines:
    """Line numbers (1-based) of the keys of one manifest, whatever its format."""

    def __init__(self) -> None:
        self._lines: dict[Path, int] = {}

    def line_of(self, path: Path) -> int | None:
        """The line of ``path``, else of its nearest written ancestor, else None."""
        for end in range(len(path), 0, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None


class TomlLines(KeyLines):
    """Line numbers (1-based) of the tables and keys of one TOML document."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self._scan(text)

    def _scan(self, text: str) -> None:
        arrays: dict[tuple[str, ...], int] = {}  # array-of-tables key path -> last index
        table: Path = ()
        in_string: str | None = None
        depth = 0  # brackets and braces a multi-line value left open
        for number, line in enumerate(text.splitlines(), start=1):
            if in_string is not None:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            if depth > 0:
                depth += _opened(line)
                continue
            header = _HEADER.match(line)
            if header:
                keys = _parts(header.group(2))
                if header.group(1) == "[[":
                    arrays[keys] = arrays.get(keys, -1) + 1
                table = _with_indexes(keys, arrays)
                self._lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                path = table + _parts(key.group(1))
                self._lines.setdefault(path, number)
                rest = line[key.end() :]
                for quote in ('"""', "'''"):
                    if rest.count(quote) % 2 == 1:
                        in_string = quote
                if in_string is None:
                    depth = max(0, _opened(rest))


def _opened(text: str) -> int:
    """How many more brackets and braces ``text`` opens than it closes (strings and
    comments left out)."""
    code = _STRINGS.sub("", text).split("#", 1)[0]
    return code.count("[") + code.count("{") - code.count("]") - code.count("}")


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(p[1:-1] if p[0] in "\"'" else p for p in _PART.findall(dotted))


def _with_indexes(keys: tuple[str, ...], arrays: dict[tuple[str, ...], int]) -> Path:
    """``keys`` with the current index after each prefix that names an array of tables."""
    path: list[str | int] = []
    for end in range(1, len(keys) + 1):
        path.append(keys[end - 1])
        index = arrays.get(keys[:end])
        if index is not None:
            path.append(index)
    return tuple(path)
