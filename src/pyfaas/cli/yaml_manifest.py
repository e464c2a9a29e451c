"""An app's ``pyfaas.yaml``: the same document as ``pyfaas.toml``, in YAML. PyYAML's node
tree keeps where each key is written, so errors name the line as they do for TOML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pyfaas.cli.toml_lines import KeyLines
from pyfaas.cli.toml_lines import Path as KeyPath


class YamlLines(KeyLines):
    """Line numbers (1-based) of the keys and list items of one YAML document."""

    def __init__(self, root: yaml.Node | None) -> None:
        super().__init__()
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, path: KeyPath) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                where = (*path, key.value if isinstance(key, yaml.ScalarNode) else str(key.value))
                self._lines.setdefault(where, key.start_mark.line + 1)
                self._walk(value, where)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                where = (*path, index)
                self._lines.setdefault(where, item.start_mark.line + 1)
                self._walk(item, where)


def load_yaml(file: Path, text: str) -> tuple[Any, YamlLines]:
    """The document and where its keys are. Raises ValueError with ``file:line: why`` when
    it is not valid YAML, holds several documents, or a key is not a string."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{file}{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{file}: not valid YAML: {exc}") from None
    lines = YamlLines(root)
    _check_keys(file, document, (), lines)
    return ({} if document is None else document), lines


def _check_keys(file: Path, value: Any, path: KeyPath, lines: YamlLines) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                line = lines.line_of((*path, str(key)))
                where = f"{file}:{line}" if line else str(file)
                raise ValueError(f"{where}: key {key!r} must be a string (quote it)")
            _check_keys(file, item, (*path, key), lines)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_keys(file, item, (*path, index), lines)
