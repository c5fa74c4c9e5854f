"""Model monitoring: input drift against the training profile, sampled prediction
logs, and the report behind ``shipyard monitor``.

    from shipyard.models import profile_of
    from shipyard.monitor import DriftWindow, PredictionLog

    window = DriftWindow(profile_of(model.manifest), window_rows=10_000)
    window.add(inputs)                 # per request: an append, no work
    window.scores()                    # per scrape: {"distance": 0.03, ...} (PSI)

    log = PredictionLog(tracking_client, "rides", "models:/rides@production",
                        sample_rate=0.01)
    log.record(version, inputs, outputs, rows)      # per request: one random draw
    log.close()

    report = monitor_report("models:/rides@production", window_seconds=3600)

PSI reading (:func:`drift_status`): below :data:`PSI_MODERATE` (0.1) stable, up
to :data:`PSI_SIGNIFICANT` (0.25) moderate, above it significant drift. The
profile itself is built at ``log_model`` time (:mod:`shipyard.models._profile`).
"""

from __future__ import annotations

from shipyard.models import PSI_MODERATE, PSI_SIGNIFICANT, drift_status, psi
from shipyard.monitor._drift import DriftWindow
from shipyard.monitor._log import (
    MODEL_TAG,
    SERVING_EXPERIMENT,
    URI_TAG,
    PredictionLog,
)
from shipyard.monitor._report import (
    FeatureDrift,
    MonitorReport,
    OutputSummary,
    monitor_report,
)

__all__ = [
    "MODEL_TAG",
    "PSI_MODERATE",
    "PSI_SIGNIFICANT",
    "SERVING_EXPERIMENT",
    "URI_TAG",
    "DriftWindow",
    "FeatureDrift",
    "MonitorReport",
    "OutputSummary",
    "PredictionLog",
    "drift_status",
    "monitor_report",
    "psi",
]
