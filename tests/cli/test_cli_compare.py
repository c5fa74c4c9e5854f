"""``shipyard runs compare | history`` and ``shipyard artifacts list | download``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cli_support import Home

# -- compare ---------------------------------------------------------------------------


def _row(out: str, field: str) -> str:
    return next(line for line in out.splitlines() if line[2:].startswith(field + " "))


def test_compare_marks_differences(home: Home) -> None:
    """Rows whose values differ are starred; equal rows and missing values are shown."""
    result = home("runs", "compare", "baseline", "wide")
    assert result.code == 0
    assert "baseline" in result.out
    assert "wide" in result.out
    assert _row(result.out, "params.alpha").startswith("* ")
    assert _row(result.out, "params.alpha").split()[-2:] == ["0.1", "0.5"]
    assert _row(result.out, "params.layers").startswith("  ")
    assert _row(result.out, "params.use_bn").startswith("* ")  # missing on wide
    assert _row(result.out, "metrics.val_rmse").split()[-2:] == ["2.1", "3.2"]
    assert _row(result.out, "experiment").startswith("  ")
    assert _row(result.out, "status").startswith("* ")


def test_compare_only_diff_and_summary(home: Home) -> None:
    """--only-diff drops equal rows; --summary picks min/max instead of last."""
    result = home("runs", "compare", "baseline", "wide", "--only-diff", "--summary", "max")
    assert "params.layers" not in result.out
    assert _row(result.out, "metrics.val_rmse").split()[-2:] == ["3", "3.5"]


def test_compare_json(home: Home) -> None:
    """--json lists each field's values per run, null where missing, and a flag."""
    data = home("runs", "compare", "baseline", "wide", "--json").json()
    assert [r["name"] for r in data["runs"]] == ["baseline", "wide"]
    rows = {r["field"]: r for r in data["rows"]}
    assert rows["params.use_bn"] == {
        "field": "params.use_bn",
        "values": [True, None],
        "differs": True,
    }
    assert rows["params.layers"]["differs"] is False
    assert rows["metrics.weird"]["values"] == ["nan", None]


def test_compare_same_run_twice_has_no_differences(home: Home) -> None:
    """A run compared with itself differs nowhere (NaN equals NaN here)."""
    data = home("runs", "compare", "baseline", home.runs["baseline"], "--json").json()
    assert not [r["field"] for r in data["rows"] if r["differs"]]
    only = home("runs", "compare", "baseline", "baseline", "--only-diff")
    assert "do not differ" in only.err


def test_compare_needs_two_runs(home: Home) -> None:
    """One run is a usage error; an unknown one an 'error:' line."""
    assert home("runs", "compare", "baseline").code == 2
    unknown = home("runs", "compare", "baseline", "nosuchrun")
    assert unknown.code == 1
    assert unknown.err.startswith("error: no run matches 'nosuchrun'")


# -- history ---------------------------------------------------------------------------


def test_history_table(home: Home) -> None:
    """The table lists step and value, oldest step first."""
    result = home("runs", "history", "baseline", "val_rmse")
    assert result.code == 0
    rows = [line.split() for line in result.out.splitlines() if line.strip()[:1].isdigit()]
    assert [r[:2] for r in rows[:2]] == [["0", "3"], ["1", "2.9"]]
    assert len(rows) == 10


def test_history_csv_keeps_nan_and_inf(home: Home) -> None:
    """--csv prints step,value,timestamp with every point; nan and inf parse back."""
    result = home("runs", "history", "baseline", "spike", "--csv")
    rows = list(csv.reader(io.StringIO(result.out)))
    assert rows[0] == ["step", "value", "timestamp"]
    assert [(int(s), float(v)) for s, v, _ in rows[1:]] == [(0, 1.0), (1, float("inf"))]
    nan = home("runs", "history", "baseline", "weird", "--csv").out.splitlines()[1]
    assert nan.split(",")[1] == "nan"


def test_history_downsamples(home: Home) -> None:
    """--max-points downsamples and says so; a table caps long histories by default."""
    data = home("runs", "history", "lonely", "lr", "--max-points", "100", "--json").json()
    assert data["total"] == 2500
    assert data["downsampled"] is True
    assert 2 <= len(data["points"]) <= 100
    assert data["points"][0] == {"step": 0, "value": 1.0, "timestamp": 1e9}
    full = home("runs", "history", "lonely", "lr", "--json").json()
    assert len(full["points"]) == 2500
    table = home("runs", "history", "lonely", "lr")
    assert "downsampled" in table.err
    assert len(table.out.splitlines()) < 1100


def test_history_unknown_metric(home: Home) -> None:
    """An unknown key is an error naming the run's metrics."""
    result = home("runs", "history", "baseline", "nope")
    assert result.code == 1
    assert "has no metric 'nope'" in result.err
    assert "spike, val_rmse, weird" in result.err


def test_history_csv_and_json_together_is_a_usage_error(home: Home) -> None:
    """--csv and --json exclude each other."""
    assert home("runs", "history", "baseline", "spike", "--csv", "--json").code == 2


# -- artifacts -------------------------------------------------------------------------


def test_artifacts_list(home: Home) -> None:
    """list shows top-level artifacts, or the files inside a logged directory."""
    top = home("artifacts", "list", "baseline", "--json").json()
    assert {(a["path"], a["kind"]) for a in top} == {("model.txt", "file"), ("plots", "dir")}
    inner = home("artifacts", "list", "baseline", "plots/roc.png")
    assert "plots/roc.png" in inner.out
    assert "300 B" in inner.out
    none = home("artifacts", "list", "lonely")
    assert none.code == 0
    assert "no artifacts" in none.err


def test_artifacts_download(home: Home, tmp_path: Path) -> None:
    """download copies a folder (verified) into --dest and prints where it went."""
    result = home("artifacts", "download", "baseline", "plots", "--dest", str(tmp_path))
    assert result.code == 0
    assert Path(result.out.strip()) == tmp_path / "plots"
    assert (tmp_path / "plots" / "roc.png").read_bytes() == b"png" * 100
    everything = home("artifacts", "download", "baseline", "--dest", str(tmp_path / "all"))
    assert everything.code == 0
    assert (tmp_path / "all" / "model.txt").read_text() == "weights"


def test_artifacts_bad_path(home: Home, tmp_path: Path) -> None:
    """A path that climbs out, or names nothing, is an 'error:' line."""
    climbing = home("artifacts", "list", "baseline", "../etc")
    assert climbing.code == 1
    assert climbing.err.startswith("error: invalid artifact path")
    missing = home("artifacts", "download", "baseline", "nothing", "--dest", str(tmp_path))
    assert missing.code == 1
    assert "has no artifact 'nothing'" in missing.err
