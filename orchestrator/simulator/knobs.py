"""`clamfleet simulate`'s flags as simulator values: fault knobs and the load model.

Raises ValueError with a message for the user; the CLI turns it into its one-line error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from orchestrator.simulator.load import LoadSpec
from orchestrator.simulator.spec import Faults, FleetSpec


def with_fault_args(spec: FleetSpec, fault_args: Sequence[str]) -> FleetSpec:
    """Apply `SERVER:KNOB=VALUE` fault knobs (the fields of `Faults`) to a fleet spec."""
    by_server: dict[str, dict[str, Any]] = {}
    kinds = {f.name for f in dataclasses.fields(Faults)}
    for text in fault_args:
        server, _, assignment = text.partition(":")
        knob, _, value = assignment.partition("=")
        if not server or knob not in kinds or not value:
            raise ValueError(
                f"expected SERVER:KNOB=VALUE with KNOB one of {', '.join(sorted(kinds))}"
            )
        by_server.setdefault(server, {})[knob] = fault_value(knob, value)
    names = {s.name for s in spec.servers}
    if unknown := [name for name in by_server if name not in names]:
        raise ValueError(f"no simulated server named {', '.join(unknown)}")
    for server, knobs in by_server.items():
        spec = spec.with_faults(server, **knobs)
    return spec


def fault_value(knob: str, value: str) -> Any:
    """The text of a knob's value as the type its default has."""
    current = getattr(Faults(), knob)
    try:
        if isinstance(current, bool):
            return value.lower() in ("1", "true", "yes", "on")
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, frozenset) or current is None:
            return frozenset(v for v in value.split(",") if v)
    except ValueError:
        raise ValueError(f"{knob}: {value!r} is not a valid value") from None
    return value


def load_spec(cores: int | None, background: float, time_scale: float) -> LoadSpec | None:
    """`--cores N [--background B] [--time-scale K]`: None without --cores (no load model)."""
    if cores is None:
        return None
    if cores < 1 or background < 0 or time_scale <= 0:
        raise ValueError("--cores >= 1, --background >= 0, --time-scale > 0")
    return LoadSpec(cores=cores, background=background)
