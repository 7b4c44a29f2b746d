"""The architecture contracts of .importlinter hold for the code, and each one bites: a copy of
the package with one forbidden import added breaks exactly the rule it should."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the package under `root` (it analyses the package it finds there)."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


CONTRACTS = (
    "layers",
    "cli-layers",
    "engine-layers",
    "client-layers",
    "workflow-layers",
    "config-layers",
    "pure-workflow",
    "aiohttp-only-in-client",
    "concurrency",
    "simulator-is-server-side",
)


def test_the_code_keeps_every_import_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout
    for contract in CONTRACTS:  # each id exists (so a broken one below is that rule's verdict)
        only = lint_imports(ROOT, "--contract", contract)
        assert only.returncode == 0, only.stdout + only.stderr


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        pytest.param(
            "report/html.py", "from orchestrator.engine import shard", "layers", id="layer-upward"
        ),
        pytest.param(
            "cli/progress_model.py",
            "from orchestrator.cli import commands",
            "cli-layers",
            id="cli-layer-upward",
        ),
        pytest.param(
            "engine/lanes.py",
            "from orchestrator.engine import runner",
            "engine-layers",
            id="engine-layer-upward",
        ),
        pytest.param(
            "client/transport.py",
            "from orchestrator.client import route",
            "client-layers",
            id="client-layer-upward",
        ),
        pytest.param(
            "workflow/state.py",
            "from orchestrator.workflow import machine",
            "workflow-layers",
            id="workflow-layer-upward",
        ),
        pytest.param(
            "config/types.py",
            "from orchestrator.config import yamlsrc",
            "config-layers",
            id="config-layer-upward",
        ),
        pytest.param("workflow/scan.py", "import time", "pure-workflow", id="workflow-clock"),
        pytest.param("engine/policy.py", "import aiohttp", "aiohttp-only-in-client", id="aiohttp"),
        pytest.param(
            "client/channel.py", "import aiohttp", "aiohttp-only-in-client", id="aiohttp-in-client"
        ),
        pytest.param("report/html.py", "import anyio", "concurrency", id="anyio-outside"),
        pytest.param(
            "simulator/scan.py",
            "from orchestrator import model",
            "simulator-is-server-side",
            id="simulator-uses-client-code",
        ),
        pytest.param("unplaced.py", "", "layers", id="module-in-no-layer"),
        pytest.param("engine/unplaced.py", "", "engine-layers", id="engine-module-in-no-layer"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    shutil.copytree(ROOT / "orchestrator", tmp_path / "orchestrator")
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    path = tmp_path / "orchestrator" / module
    path.write_text((path.read_text() if path.exists() else "") + f"\n{line}\n")
    whole = lint_imports(tmp_path)
    assert whole.returncode != 0, whole.stdout
    assert "1 broken" in whole.stdout, whole.stdout  # that rule alone
    only = lint_imports(tmp_path, "--contract", contract)
    assert only.returncode != 0, only.stdout
