"""Random-number-generator states of Python, NumPy, torch and CUDA, for exact resume.

Only libraries already imported are captured: a scikit-learn loop does not
import torch to save a state it never used.
"""

from __future__ import annotations

import random
import sys
from typing import Any

__all__ = ["capture_rng", "restore_rng", "seed_everything"]


def capture_rng() -> dict[str, Any]:
    """The global RNG states, as a checkpointable mapping."""
    state: dict[str, Any] = {"python": random.getstate()}
    if "numpy" in sys.modules:
        import numpy as np

        state["numpy"] = np.random.get_state()
    if "torch" in sys.modules:
        import torch

        state["torch"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
            state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back states captured by :func:`capture_rng` (those present)."""
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        import numpy as np

        np.random.set_state(tuple(state["numpy"]))
    if "torch" in state:
        import torch

        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            cuda = state["cuda"]
            if len(cuda) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy (if imported) and torch (if imported, all devices)."""
    random.seed(seed)
    if "numpy" in sys.modules:
        import numpy as np

        np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
