"""Frozen dataclasses <-> JSON-ready dicts, driven by their fields and type hints.

    to_dict(value)         -> dict            (enums as their values, tuples as lists)
    from_dict(cls, data)   -> cls instance    (checked against the type hints)

For values this program persists and reads back itself (the journal's workflow states), so the
encoding is the dataclasses' own shape and needs no hand-written decoder to keep in step with
it. Understood hints: dataclasses (nested), `StrEnum`s, `str`, `int`, `float`, `bool`,
`X | None`, `tuple[X, ...]` and fixed `tuple[X, Y, Z]`. A key missing from `data` takes the
field's default (a field added later reads as its default); a missing key without one, a value of
the wrong type or an unknown enum value raises `DecodeError` naming the field path. Keys the
class does not have are ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from enum import Enum
from functools import cache
from typing import Any, TypeVar, cast

T = TypeVar("T")


class DecodeError(ValueError):
    """Raised when a dict does not decode to the dataclass asked for; says which field."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where or '(top)'}: {message}")
        self.where = where


def to_dict(value: Any) -> dict[str, Any]:
    """The fields of dataclass instance `value`, recursively, as JSON-ready values."""
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        raise TypeError(f"not a dataclass instance: {type(value).__name__}")
    return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}


def _encode(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return value
    raise TypeError(f"cannot encode a {type(value).__name__}")


def from_dict(cls: type[T], data: Any) -> T:
    """An instance of dataclass `cls` from `to_dict`'s output (after a JSON round trip)."""
    return cast(T, _decode_dataclass(cls, data, ""))


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode_dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise DecodeError(where, f"expected an object, got {_kind(data)}")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        path = f"{where}.{f.name}" if where else f.name
        if f.name in data:
            values[f.name] = _decode(hints[f.name], data[f.name], path)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise DecodeError(path, "missing")
    return cls(**values)


def _decode(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is types.UnionType or origin is typing.Union:
        return _decode_optional(hint, value, where)
    if origin is tuple:
        return _decode_tuple(typing.get_args(hint), value, where)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _decode_dataclass(hint, value, where)
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            raise DecodeError(where, f"unknown {hint.__name__} {value!r}") from None
    if hint in (str, int, float, bool):
        return _decode_scalar(hint, value, where)
    raise TypeError(f"{where}: cannot decode {hint!r}")


def _decode_optional(hint: Any, value: Any, where: str) -> Any:
    arms = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(arms) != 1:  # a real union would need a tag to tell its arms apart
        raise TypeError(f"{where}: cannot decode {hint!r}")
    return None if value is None else _decode(arms[0], value, where)


def _decode_tuple(args: tuple[Any, ...], value: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise DecodeError(where, f"expected a list, got {_kind(value)}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise DecodeError(where, f"expected {len(args)} items, got {len(value)}")
    return tuple(
        _decode(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
    )


def _decode_scalar(hint: type, value: Any, where: str) -> Any:
    # A float field may hold an int (a clock that started at 0): it reads back as a float.
    # An int field never takes a float, and bool (an int to Python) is no number here.
    ok = isinstance(value, hint) and not (hint is not bool and isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise DecodeError(where, f"expected {hint.__name__}, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
