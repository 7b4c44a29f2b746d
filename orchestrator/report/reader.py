"""Typed reads of a JSON document (report.json): each failure a ConfigError naming the file
and the field path (`report.json: targets[3].scan.scanned_file_count: expected an integer`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Any, TypeVar

from orchestrator.errors import ConfigError
from orchestrator.report.model import (
    utc_second,
)

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")


class Reader:
    """Typed access to a JSON document; failures become ConfigErrors naming file and field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(message, file=self.source, field=where or None)

    def obj(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {_kind(value)}")
        return value

    def key(self, obj: Mapping[str, Any], key: str, where: str) -> Any:
        if key not in obj:
            raise self.fail(where, f"missing key '{key}'")
        return obj[key]

    def array(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, got {_kind(value)}")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"expected a string, got {_kind(value)}")
        return value

    def integer(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"expected an integer, got {_kind(value)}")
        return value

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(where, f"expected a number, got {_kind(value)}")
        return float(value)

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, got {_kind(value)}")
        return value

    def time(self, value: Any, where: str) -> datetime:
        text = self.text(value, where)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise self.fail(where, f"not an ISO 8601 timestamp: {text!r}") from None
        if moment.tzinfo is None:
            raise self.fail(where, f"timestamp without a time zone: {text!r}")
        return utc_second(moment)

    def date(self, value: Any, where: str) -> date:
        text = self.text(value, where)
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise self.fail(where, f"not a date YYYY-MM-DD: {text!r}") from None

    def enum(self, cls: type[E], value: Any, where: str, label: str) -> E:
        text = self.text(value, where)
        try:
            return cls(text)
        except ValueError:
            raise self.fail(where, f"unknown {label} {text!r}") from None

    def optional(self, read: Callable[[Any, str], T], value: Any, where: str) -> T | None:
        return None if value is None else read(value, where)

    def field(self, obj: Mapping[str, Any], key: str, where: str) -> tuple[Any, str]:
        """The value of `key` and its field path."""
        return self.key(obj, key, where), f"{where}.{key}" if where else key

    def fields(self, obj: Mapping[str, Any], where: str) -> Callable[[str], tuple[Any, str]]:
        """`field` bound to one object: `get = r.fields(obj, where)`, then `r.text(*get(k))`."""
        return lambda key: self.field(obj, key, where)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
