"""Run the orchestrator CLI with candidate performance changes applied, to measure them.

    python bench/patches.py PATCH[,PATCH...] run INVENTORY ...   (what `run.py --patch` does)

The orchestrator's code is not edited: each patch replaces one function at import time with the
change proposed in bench/RESULTS.md, so the bench can measure "before" and "after" in the same
session.

The three patches measured first (`poll`, `limiter`, `retry`) have been adopted into the
orchestrator itself; bench/RESULTS.md has their before and after. Add a new candidate as a
function that replaces one orchestrator function, and register it in PATCHES.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

PATCHES: dict[str, Callable[[], None]] = {}


def main(argv: list[str]) -> int:
    names = [n for n in argv[0].split(",") if n and n != "none"]
    for name in names:
        if name not in PATCHES:
            print(f"patches.py: no patch {name!r} (have: {', '.join(PATCHES) or 'none'})")
            return 2
        PATCHES[name]()
    from orchestrator.cli import main as cli_main

    return cli_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
