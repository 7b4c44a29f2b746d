"""YAML with line numbers: typed reads of composed nodes that fail as `file:line: field: message`.

The inventory and policy loaders read `yaml.compose` nodes (SafeLoader semantics: no Python
tags, no object construction) instead of `yaml.safe_load` output, because only nodes remember
where they were written. Every reader here returns plain values or raises `ConfigError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import yaml

from orchestrator.config.durations import parse_duration
from orchestrator.errors import ConfigError
from orchestrator.secretref import NOT_SHOWN, is_secret_field

E = TypeVar("E", bound=StrEnum)

_TAG = "tag:yaml.org,2002:"
_MERGE = _TAG + "merge"
_TEXT_TAGS = (_TAG + "str", _TAG + "int", _TAG + "float")
_KINDS = {
    "int": "an integer",
    "float": "a decimal number",
    "bool": "a boolean",
    "timestamp": "a date",
}
_PLAIN_TAGS = frozenset(("str", "int", "float", "bool", "null", "map", "seq", "merge", "timestamp"))


DURATION = "seconds > 0 or a duration such as 45s, 90m, 6h, 1h30m"


def read_document(path: str | Path, what: str) -> Value | None:
    """Compose the file's single YAML document; None when it holds none (empty, comments)."""
    file = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the {what}: {exc.strerror or exc}", file=file) from None
    except UnicodeDecodeError:
        raise ConfigError(f"the {what} is not UTF-8 text", file=file) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, file) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    if node is None:
        return None
    _check_tags(node, file)
    return Value(node, "", file)


def _check_tags(root: yaml.Node, file: str) -> None:
    """Refuse explicit tags such as `!!python/object`: compose never runs them, but a config
    that carries one was written for a loader it should not be given to."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:  # aliases share nodes, and may even form cycles
            continue
        seen.add(id(node))
        if node.tag.removeprefix(_TAG) not in _PLAIN_TAGS:
            line = int(node.start_mark.line) + 1
            raise ConfigError(f"YAML tag {node.tag!r} is not allowed", file=file, line=line)
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)


def _syntax_error(exc: yaml.MarkedYAMLError, file: str) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    parts = [p for p in (exc.context, exc.problem) if p]
    return ConfigError(
        "invalid YAML: " + (", ".join(parts) or "syntax error"),
        file=file,
        line=None if mark is None else mark.line + 1,
    )


def describe(node: yaml.Node, *, hide: bool = False) -> str:
    """A short description of what was written, for "expected X, got Y" messages.

    With `hide` only its kind (`a string`), never its text: the value may be a secret.
    """
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    kind = node.tag.removeprefix(_TAG)
    if kind == "null":
        return "nothing (null)"
    if hide:
        return f"{'a string' if kind == 'str' else _KINDS.get(kind, 'a value')} ({NOT_SHOWN})"
    shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
    if kind == "str":
        return f"the string {shown!r}"
    return f"{shown} ({_KINDS.get(kind, kind)})"


@dataclass(frozen=True, slots=True)
class Value:
    """One composed node, with the field path and file it came from."""

    node: yaml.Node
    field: str
    file: str

    @property
    def line(self) -> int:
        return int(self.node.start_mark.line) + 1

    def error(self, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, line=self.line, field=self.field or None)

    def expected(self, what: str) -> ConfigError:
        hide = is_secret_field(self.field)
        return self.error(f"expected {what}, got {describe(self.node, hide=hide)}")

    def child(self, node: yaml.Node, key: str) -> Value:
        return Value(node, f"{self.field}.{key}" if self.field else key, self.file)

    @property
    def is_null(self) -> bool:
        return isinstance(self.node, yaml.ScalarNode) and self.node.tag == _TAG + "null"

    # -- containers ---------------------------------------------------------------------------

    def mapping(
        self, allowed: Collection[str] | None = None, *, null_ok: bool = False
    ) -> dict[str, Value]:
        """The mapping's entries by key: duplicate keys, and keys not in `allowed`, are errors."""
        if null_ok and self.is_null:
            return {}
        if not isinstance(self.node, yaml.MappingNode):
            raise self.expected("a mapping")
        self._check_duplicates()
        out: dict[str, Value] = {}
        for key_node, value_node in self._pairs(self.node):
            key = self._key(key_node)
            if allowed is not None and key not in allowed:
                where = self.child(key_node, key)
                raise where.error(f"unknown key {key!r} (allowed: {', '.join(allowed)})")
            out[key] = self.child(value_node, key)
        return out

    def _pairs(
        self, node: yaml.MappingNode, outer: frozenset[int] = frozenset()
    ) -> list[tuple[yaml.Node, yaml.Node]]:
        """Entries with `<<: *anchor` merge keys expanded, lowest precedence first.

        As in yaml.safe_load, the mapping's own keys win, then the merged mappings in the order
        listed. The node is not modified, so a mapping may be read twice.
        """
        if id(node) in outer:  # `a: &a {<<: *a}` would otherwise recurse forever
            raise Value(node, self.field, self.file).error("a mapping cannot merge itself (<<)")
        outer |= {id(node)}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        own: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                own.append((key_node, value_node))
                continue
            many = isinstance(value_node, yaml.SequenceNode)
            for source in reversed(value_node.value) if many else [value_node]:
                if not isinstance(source, yaml.MappingNode):
                    raise Value(source, self.field, self.file).expected("a mapping to merge (<<)")
                merged.extend(self._pairs(source, outer))
        return merged + own

    def _key(self, node: yaml.Node) -> str:
        # The key's source text, whatever YAML 1.1 would resolve it to: `on:` stays "on", so a
        # typo is reported as an unknown key rather than as a boolean.
        if not isinstance(node, yaml.ScalarNode):
            raise Value(node, self.field, self.file).error("keys must be plain strings")
        return str(node.value)

    def _check_duplicates(self) -> None:
        seen: dict[str, int] = {}
        for key_node, _ in self.node.value:
            if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                continue
            key, where = str(key_node.value), self.child(key_node, str(key_node.value))
            if key in seen:
                raise where.error(f"duplicate key (first at line {seen[key]})")
            seen[key] = where.line

    def items(self, *, non_empty: bool = False) -> list[Value]:
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.expected("a list")
        if non_empty and not self.node.value:
            raise self.error("must not be empty")
        return [Value(n, f"{self.field}[{i}]", self.file) for i, n in enumerate(self.node.value)]

    # -- scalars ------------------------------------------------------------------------------

    def text(self, pattern: re.Pattern[str] | None = None, what: str = "a string") -> str:
        """A non-empty string. Numbers count as their source text (`name: 2024` is "2024")."""
        if not isinstance(self.node, yaml.ScalarNode) or self.node.tag not in _TEXT_TAGS:
            raise self.expected(what)
        value = str(self.node.value)
        if not value or (pattern is not None and not pattern.fullmatch(value)):
            raise self.expected(what)
        return value

    def boolean(self) -> bool:
        if not isinstance(self.node, yaml.ScalarNode) or self.node.tag != _TAG + "bool":
            raise self.expected("true or false")
        return bool(self.node.value.lower() in ("true", "yes", "on", "y"))

    def integer(self, minimum: int = 0, maximum: int | None = None) -> int:
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        number = self._number(integer=True)
        if number is None or number < minimum or (maximum is not None and number > maximum):
            raise self.expected(f"an integer {bounds}")
        return int(number)

    def positive(self) -> float:
        """A number > 0; decimals allowed."""
        number = self._number(integer=False)
        if number is None or not math.isfinite(number) or number <= 0:
            raise self.expected("a number > 0")
        return float(number)

    def duration(self) -> float:
        """Seconds > 0: a number (decimals allowed) or a duration string (`15m`, `1h30m`)."""
        number = self._number(integer=False)
        if number is not None:
            if not math.isfinite(number) or number <= 0:
                raise self.expected(DURATION)
            return float(number)
        if isinstance(self.node, yaml.ScalarNode) and self.node.tag in _TEXT_TAGS:
            try:
                return parse_duration(str(self.node.value))
            except ValueError:
                pass
        raise self.expected(DURATION)

    def _number(self, *, integer: bool) -> float | None:
        if not isinstance(self.node, yaml.ScalarNode):
            return None
        tags = (_TAG + "int",) if integer else (_TAG + "int", _TAG + "float")
        if self.node.tag not in tags:
            return None
        constructed = yaml.constructor.SafeConstructor().construct_object(self.node)
        return float(constructed) if isinstance(constructed, int | float) else None

    def choice(self, enum: type[E]) -> E:
        allowed = [str(e) for e in enum]
        if isinstance(self.node, yaml.ScalarNode) and self.node.value in allowed:
            return enum(self.node.value)
        raise self.expected("one of " + " | ".join(allowed))

    def strings(self, *, non_empty: bool = False) -> list[str]:
        return [item.text() for item in self.items(non_empty=non_empty)]
