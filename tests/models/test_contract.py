"""The production contract: validated strictly, thresholds normalized."""

from __future__ import annotations

import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.models import Contract, MetricThreshold


def test_defaults_and_normalized_thresholds() -> None:
    """A number means 'at least'; {'max': x} means 'at most'; defaults fill the rest."""
    contract = Contract.from_dict(
        {"latency_p99_ms": 100, "min_metrics": {"val_auc": 0.9, "val_rmse": {"max": 3.0}}}
    )
    assert contract.batch_size == 1
    assert (contract.device, contract.format) == ("cpu", "native")
    assert contract.min_metrics["val_auc"] == MetricThreshold(min=0.9)
    assert contract.to_dict()["min_metrics"] == {"val_auc": {"min": 0.9}, "val_rmse": {"max": 3.0}}
    assert Contract.from_dict(contract.to_dict()) == contract


def test_unknown_keys_are_refused_listing_the_valid_ones() -> None:
    """A typo fails at once with the list of valid keys."""
    with pytest.raises(InvalidArgumentError) as err:
        Contract.from_dict({"latency_p99": 100})
    assert "unknown key(s) ['latency_p99']" in str(err.value)
    assert "'latency_p99_ms'" in str(err.value)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"latency_p99_ms": -1}, "expected a number > 0"),
        ({"batch_size": 0}, "expected an integer >= 1"),
        ({"device": "tpu"}, r"expected one of \['cpu', 'cuda'\]"),
        ({"format": "tflite"}, r"expected one of \['native', 'onnx'\]"),
        ({"min_metrics": {"auc": {"above": 1}}}, "expected a number"),
        ({"latency_p50_ms": 50, "latency_p99_ms": 10}, "above latency_p99_ms"),
    ],
)
def test_bad_values_are_refused(doc: dict[str, object], message: str) -> None:
    """Each field is checked for type and range."""
    with pytest.raises(InvalidArgumentError, match=message):
        Contract.from_dict(doc)


def test_check_metrics_reports_failures_and_missing_metrics() -> None:
    """Metrics below a minimum, above a maximum or never logged fail."""
    contract = Contract.from_dict(
        {"min_metrics": {"auc": 0.9, "rmse": {"max": 3.0}, "f1": {"min": 0.5}}}
    )
    assert contract.check_metrics({"auc": 0.95, "rmse": 2.0, "f1": 0.6}) == []
    problems = contract.check_metrics({"auc": 0.8, "rmse": 4.0})
    assert problems == [
        "auc = 0.8 (needs >= 0.9)",
        "rmse = 4 (needs <= 3)",
        "f1 was not logged (needs >= 0.5)",
    ]
