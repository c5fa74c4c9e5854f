"""The shipyard.monitor facade: an honest __all__ and no heavy imports."""

from __future__ import annotations

import importlib
import subprocess
import sys


def test_monitor_facade_all_is_complete() -> None:
    """Every name in shipyard.monitor.__all__ exists, once."""
    module = importlib.import_module("shipyard.monitor")
    assert len(module.__all__) == len(set(module.__all__))
    for name in module.__all__:
        assert hasattr(module, name), name


def test_import_monitor_loads_no_model_library() -> None:
    """A server importing shipyard.monitor pays for NumPy only: no pandas, sklearn, torch."""
    code = (
        "import sys, shipyard.monitor; "
        "print([m for m in ('pandas', 'sklearn', 'torch', 'onnxruntime') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
