"""Fixtures for the training tests: torch is required; the CLI runs for real."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("torch")

HERE = Path(__file__).parent
_SCRIPT = Path(sys.executable).with_name("shipyard")
SHIPYARD = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "shipyard.cli"]
Train = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def train_cli(home: Path) -> Train:
    """Run ``shipyard ARGS`` in its own process on ``home``, with extra environment."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        full.update(SHIPYARD_HOME=str(home), COLUMNS="200", NO_COLOR="1", **(env or {}))
        return subprocess.run(
            [*SHIPYARD, *args], env=full, capture_output=True, text=True, timeout=300,
            check=False, cwd=HERE,
        )  # fmt: skip

    return run
