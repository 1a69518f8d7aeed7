"""YAML loading that remembers line numbers, so every error can name file and line."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import yaml


class SourceError(Exception):
    """A problem in a rules or configuration file, located at file:line (and rule id)."""

    def __init__(self, path: str | Path, line: int | None, message: str,
                 rule_id: str | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        self.rule_id = rule_id
        super().__init__(self.format())

    def format(self) -> str:
        where = self.path if self.line is None else f"{self.path} line {self.line}"
        if self.rule_id:
            where += f", rule {self.rule_id}"
        return f"{where}: {self.message}"


class LineDict(dict):
    """A mapping from YAML that knows where it and each of its keys and values started."""

    line: int = 0
    key_lines: dict[Any, int]
    value_lines: dict[Any, int]
    value_styles: dict[Any, str | None]

    def line_of(self, key: Any) -> int:
        return self.value_lines.get(key, self.key_lines.get(key, self.line))


class LineList(list):
    """A sequence from YAML with the line of each item."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


class _Loader(yaml.SafeLoader):
    """SafeLoader (no Python object tags) that records lines and refuses duplicate keys."""


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines, result.value_lines, result.value_styles = {}, {}, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain word", key_node.start_mark)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None,
                f"key '{key}' appears twice (first on line {result.key_lines[key]})",
                key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
        result.value_lines[key] = value_node.start_mark.line + 1
        result.value_styles[key] = getattr(value_node, "style", None)
    return result


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(item, deep=True) for item in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [item.start_mark.line + 1 for item in node.value]
    return result


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def load_yaml(path: str | Path) -> Any:
    """Parse one YAML file; syntax errors become SourceError with the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(path, None, f"cannot read the file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise SourceError(path, None, "the file is not UTF-8 text: save it as UTF-8") from exc
    # Names and quotes compare as they are shown: the whole text in NFC (line numbers do
    # not change), so a rule file saved in NFD means the same as one saved in NFC.
    text = unicodedata.normalize("NFC", text)
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise SourceError(path, line, f"YAML syntax error: {problem}") from exc
    except yaml.YAMLError as exc:
        raise SourceError(path, None, f"YAML error: {exc}") from exc
    except RecursionError:
        raise SourceError(path, None, "the YAML is nested too deeply to be a rule file") \
            from None


def expression_line(mapping: LineDict, key: str, offset: int) -> int:
    """Line of character `offset` inside the expression stored under `key`."""
    line = mapping.line_of(key)
    style = mapping.value_styles.get(key)
    text = mapping.get(key)
    if isinstance(text, str) and style in ("|", ">"):
        # Block scalars start on the line after the indicator.
        return line + 1 + (text[:offset].count("\n") if style == "|" else 0)
    return line
