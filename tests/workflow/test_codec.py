"""The generic dataclass codec the journal stores workflow states with: what it writes, what it
reads back, and how it refuses data that does not fit the type hints."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pytest

from orchestrator.workflow import codec


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True, slots=True)
class Inner:
    colour: Colour
    at: float | None = None


@dataclass(frozen=True, slots=True)
class Outer:
    name: str
    count: int
    inner: Inner
    anchor: tuple[float, int, int] | None = None
    pairs: tuple[tuple[str, str], ...] = ()
    inners: tuple[Inner, ...] = ()
    flag: bool = False
    later: Inner = field(default_factory=lambda: Inner(Colour.BLUE))


SAMPLE = Outer(
    name="a",
    count=3,
    inner=Inner(Colour.RED, 1.5),
    anchor=(2.5, 4, 5),
    pairs=(("p", "v"), ("q", "w")),
    inners=(Inner(Colour.BLUE), Inner(Colour.RED, 0.0)),
    flag=True,
)


def through_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def test_nested_values_are_written_as_plain_json_and_read_back_equal() -> None:
    data = codec.to_dict(SAMPLE)
    assert data["inner"] == {"colour": "red", "at": 1.5}
    assert data["anchor"] == [2.5, 4, 5]
    assert data["pairs"] == [["p", "v"], ["q", "w"]]
    back = codec.from_dict(Outer, through_json(data))
    assert back == SAMPLE
    assert type(back.anchor) is tuple and type(back.inner.colour) is Colour


def test_a_float_field_holding_a_whole_number_reads_back_as_a_float() -> None:
    back = codec.from_dict(Inner, through_json(codec.to_dict(Inner(Colour.RED, 0))))
    assert back.at == 0.0 and isinstance(back.at, float)


def test_a_field_missing_from_the_data_takes_its_default() -> None:
    data = through_json(codec.to_dict(SAMPLE))
    del data["later"], data["inner"]["at"]
    back = codec.from_dict(Outer, data)
    assert back.later == Inner(Colour.BLUE)
    assert back.inner.at is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("count"), r"^count: missing$"),
        (lambda d: d.update(count="3"), r"^count: expected int, got a string$"),
        (lambda d: d.update(count=True), r"^count: expected int, got a boolean$"),
        (lambda d: d.update(count=1.5), r"^count: expected int, got float$"),
        (lambda d: d["inner"].update(colour="green"), r"^inner\.colour: unknown Colour 'green'$"),
        (lambda d: d.update(anchor=[1.0, 2]), r"^anchor: expected 3 items, got 2$"),
        (lambda d: d["pairs"][1].__setitem__(0, None), r"^pairs\[1\]\[0\]: expected str, got null"),
        (lambda d: d.update(inner=[]), r"^inner: expected an object, got a list$"),
        (lambda d: d.update(inners={}), r"^inners: expected a list, got an object$"),
        (lambda d: d.update(flag=1), r"^flag: expected bool, got int$"),
    ],
)
def test_data_that_does_not_fit_the_type_hints_is_refused_naming_the_field(
    change: Any, message: str
) -> None:
    data = through_json(codec.to_dict(SAMPLE))
    change(data)
    with pytest.raises(codec.DecodeError, match=message):
        codec.from_dict(Outer, data)


def test_keys_the_class_does_not_have_are_ignored() -> None:
    data = {**through_json(codec.to_dict(SAMPLE)), "from_a_later_version": 1}
    assert codec.from_dict(Outer, data) == SAMPLE


def test_a_value_it_cannot_represent_is_refused_when_written() -> None:
    @dataclass(frozen=True, slots=True)
    class WithSet:
        items: frozenset[str]

    with pytest.raises(TypeError, match="cannot encode a frozenset"):
        codec.to_dict(WithSet(frozenset({"a"})))
