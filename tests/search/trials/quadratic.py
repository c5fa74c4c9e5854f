"""A Core API trial for the search tests: NumPy only, quick to start.

val_loss = (x - 0.3)^2 + 1 / (epoch + 1): better with more epochs, best at x = 0.3.
``crash_at``: exit with status 3 at that epoch (once when a marker file is given).
"""

import os
import sys
from pathlib import Path

from shipyard.train import init

with init({"x": 0.0, "epochs": 9, "crash_at": -1, "crash_marker": "", "sleep": 0.0}) as ctx:
    hp = ctx.hparams
    state = ctx.latest_checkpoint() or {"epoch": 0}
    x = float(hp["x"])
    for epoch in range(state["epoch"], int(hp["epochs"])):
        if epoch == hp["crash_at"]:
            marker = Path(hp["crash_marker"]) if hp["crash_marker"] else None
            if marker is None or not marker.exists():
                if marker is not None:
                    marker.write_text("crashed once")
                sys.stdout.flush()
                os._exit(3)
        if hp["sleep"]:
            import time

            time.sleep(float(hp["sleep"]))
        loss = (x - 0.3) ** 2 + 1.0 / (epoch + 1)
        ctx.report(epoch, {"val_loss": loss, "x_abs": abs(x)})
        ctx.checkpoint({"epoch": epoch + 1}, step=epoch)
        if ctx.should_stop() or ctx.should_preempt():
            break
