"""``shipyard runs list | show`` and ``shipyard experiments list | create``."""

from __future__ import annotations

import pytest
from cli_support import CODE, DIFF, Home

# -- experiments -----------------------------------------------------------------------


def test_experiments_list_shows_active_ones(home: Home) -> None:
    """The table lists active experiments with their description, not deleted ones."""
    result = home("experiments", "list")
    assert result.code == 0
    assert "rides-pricing" in result.out
    assert "price per ride" in result.out
    assert "empty-exp" in result.out
    assert "old" not in result.out.split()


def test_experiments_list_all_includes_deleted(home: Home) -> None:
    """--all adds deleted experiments and a lifecycle column."""
    result = home("experiments", "list", "--all")
    line = next(li for li in result.out.splitlines() if " old " in li)
    assert "deleted" in line


def test_experiments_list_json(home: Home) -> None:
    """--json prints every experiment's fields."""
    data = home("experiments", "list", "--json").json()
    by_name = {e["name"]: e for e in data}
    assert by_name["rides-pricing"]["id"] == home.experiments["rides-pricing"]
    assert by_name["rides-pricing"]["description"] == "price per ride"
    assert "old" not in by_name


def test_experiments_create(empty_home: Home) -> None:
    """create makes an experiment that list then shows; a second create conflicts."""
    made = empty_home("experiments", "create", "fresh", "--description", "new one", "--json")
    assert made.code == 0
    assert made.json()["name"] == "fresh"
    listed = empty_home("experiments", "list", "--json").json()
    assert [(e["name"], e["description"]) for e in listed] == [("fresh", "new one")]
    again = empty_home("experiments", "create", "fresh")
    assert again.code == 1
    assert again.err.startswith("error: ")
    assert "fresh" in again.err
    assert "Traceback" not in again.err


def test_experiments_create_rejects_a_bad_name(empty_home: Home) -> None:
    """A blank experiment name is refused with the validation message."""
    result = empty_home("experiments", "create", "   ")
    assert result.code == 1
    assert result.err.startswith("error: invalid experiment name")


# -- runs list -------------------------------------------------------------------------


def test_runs_list_default_columns(home: Home) -> None:
    """Full ids, names, status, durations, then common metrics and params fit in width."""
    result = home("runs", "list")
    assert result.code == 0
    lines = result.out.splitlines()
    header = " ".join(lines[:2])
    for column in ("id", "name", "status", "start", "duration", "val_rmse", "alpha"):
        assert column in header
    baseline = next(li for li in lines if home.runs["baseline"] in li)
    assert "FINISHED" in baseline
    assert "1m 03s" in baseline
    assert " nan " in baseline
    assert " inf " in baseline
    assert "adam" in baseline
    assert "FAILED" in next(li for li in lines if home.runs["wide"] in li)


def test_runs_list_newest_first(home: Home) -> None:
    """Runs come newest first by default."""
    data = home("runs", "list", "--json").json()
    assert data[-1]["name"] == "baseline"
    starts = [r["start_time"] for r in data]
    assert starts == sorted(starts, reverse=True)


def test_runs_list_narrow_terminal_keeps_ids_whole(home: Home) -> None:
    """At 80 columns the 32-digit ids are never cut."""
    result = home("runs", "list", COLUMNS="80")
    assert home.runs["baseline"] in result.out
    assert max(len(line) for line in result.out.splitlines()) <= 80


def test_runs_list_filter_experiment_order_and_max(home: Home) -> None:
    """--experiment, --filter, --order-by and --max reach the search."""
    result = home(
        "runs", "list", "-e", "rides-pricing", "--filter", "params.alpha >= 0.05",
        "--order-by", "metrics.val_rmse DESC", "--json",
    )  # fmt: skip
    assert [r["name"] for r in result.json()] == ["wide", "baseline"]
    capped = home("runs", "list", "--max", "2", "--json")
    assert len(capped.json()) == 2
    assert "more match" in capped.err


def test_runs_list_all_includes_deleted_runs(home: Home) -> None:
    """Deleted runs are hidden unless --all is given; show still finds them by id."""
    assert "gone" not in {r["name"] for r in home("runs", "list", "--json").json()}
    every = {r["name"]: r for r in home("runs", "list", "--all", "--json").json()}
    assert every["gone"]["lifecycle"] == "deleted"
    shown = home("runs", "show", home.runs["gone"])
    assert shown.code == 0
    assert "deleted" in shown.out


def test_runs_list_json_fields(home: Home) -> None:
    """--json gives params with their types, summaries and NaN/inf as strings."""
    data = home("runs", "list", "-e", "rides-pricing", "--json").json()
    baseline = next(r for r in data if r["name"] == "baseline")
    assert baseline["id"] == home.runs["baseline"]
    assert baseline["experiment"] == "rides-pricing"
    assert baseline["params"] == {"alpha": 0.1, "optimizer": "adam", "layers": 3, "use_bn": True}
    assert baseline["metrics"]["val_rmse"]["count"] == 10
    assert baseline["metrics"]["weird"]["last"] == "nan"
    assert baseline["metrics"]["spike"]["max"] == "inf"
    assert baseline["duration"] == pytest.approx(63)
    assert baseline["tags"] == {"team": "pricing"}


def test_runs_list_columns_option(home: Home) -> None:
    """--columns replaces the automatic columns; unknown ones are usage errors."""
    result = home(
        "runs", "list", "-e", "rides-pricing",
        "--columns", "params.optimizer,min(metrics.val_rmse)", "-c", "tags.team", "-c", "user",
    )  # fmt: skip
    header = " ".join(result.out.splitlines()[:2])
    assert "optimizer" in header
    assert "min(metrics)" in header
    assert "alpha" not in header
    baseline = next(li for li in result.out.splitlines() if home.runs["baseline"] in li)
    assert baseline.split()[-3:] == ["2.1", "pricing", "ada"]
    bad = home("runs", "list", "--columns", "metrics")
    assert bad.code == 2
    assert "unknown column 'metrics'" in bad.err


def test_runs_list_malformed_filter(home: Home) -> None:
    """A filter that does not parse is one 'error:' line and exit 1."""
    result = home("runs", "list", "--filter", "metrics.val_rmse <")
    assert result.code == 1
    assert result.err.startswith("error: invalid filter")
    assert "Traceback" not in result.err


def test_runs_list_unknown_experiment(home: Home) -> None:
    """An unknown experiment name is reported with how to list them."""
    result = home("runs", "list", "--experiment", "nope")
    assert result.code == 1
    assert "experiment 'nope' not found" in result.err


def test_runs_list_no_match_and_empty_experiment(home: Home) -> None:
    """No matching run prints nothing on stdout and a note on stderr."""
    result = home("runs", "list", "-e", "empty-exp")
    assert result.code == 0
    assert result.out == ""
    assert "no runs match" in result.err
    assert home("runs", "list", "-e", "empty-exp", "--json").json() == []


def test_runs_list_on_a_fresh_home_gives_a_hint(empty_home: Home) -> None:
    """With nothing tracked, list explains how to start and creates no database."""
    result = empty_home("runs", "list")
    assert result.code == 0
    assert "no runs yet" in result.err
    assert "shipyard.start_run" in result.err
    assert empty_home("runs", "list", "--json").json() == []
    assert empty_home("experiments", "list", "--json").json() == []
    assert not (empty_home.path / "shipyard.db").exists()


# -- runs show -------------------------------------------------------------------------


def test_runs_show_everything(home: Home) -> None:
    """show prints info, params, metric summaries, tags, code, environment, artifacts."""
    result = home("runs", "show", home.runs["baseline"])
    assert result.code == 0
    out = result.out
    for text in (
        "Run baseline",
        "rides-pricing",
        "FINISHED",
        "1m 03s",
        "optimizer",
        "adam",
        "val_rmse",
        "team",
        "pricing",
        CODE["git_commit"],
        "main",
        "untracked files  2",
        "91 B",
        "trainbox",
        "2 x NVIDIA H100",
        "3 installed",
        "model.txt",
        "plots",
    ):
        assert str(text) in out, text
    metrics = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert metrics["val_rmse"] == ["2.1", "9", "2.1", "3", "10"]
    assert metrics["weird"] == ["nan", "0", "nan", "nan", "1"]
    assert metrics["spike"] == ["inf", "1", "1", "inf", "2"]


def test_runs_show_diff(home: Home) -> None:
    """--diff prints exactly the recorded diff, ready for git apply."""
    result = home("runs", "show", "baseline", "--diff")
    assert result.code == 0
    assert result.out == DIFF


def test_runs_show_without_code_or_environment(home: Home) -> None:
    """A run with no code record says so; --diff notes there is nothing."""
    result = home("runs", "show", "lonely")
    assert "Code version: not recorded" in result.out
    assert "Environment: not recorded" in result.out
    assert "Artifacts: none" in result.out
    diff = home("runs", "show", "lonely", "--diff")
    assert diff.code == 0
    assert diff.out == ""
    assert "no uncommitted changes" in diff.err


def test_runs_show_json(home: Home) -> None:
    """--json has every field, the code and environment records, and artifacts."""
    data = home("runs", "show", "baseline", "--json").json()
    assert data["id"] == home.runs["baseline"]
    assert data["code"]["git_branch"] == "main"
    assert data["environment"]["host"] == "trainbox"
    assert sorted(a["path"] for a in data["artifacts"]) == ["model.txt", "plots"]
    assert data["metrics"]["weird"]["min"] == "nan"


def test_runs_show_by_suffix_prefix_and_name(home: Home) -> None:
    """A run is found by a unique id suffix, the full id, or a unique name."""
    run_id = home.runs["wide"]
    for ref in (run_id[-8:], run_id, "wide"):
        data = home("runs", "show", ref, "--json").json()
        assert data["id"] == run_id, ref


def test_runs_show_ambiguous_prefix(home: Home) -> None:
    """A prefix shared by several runs is refused, listing the candidates."""
    ids = list(home.runs.values())
    prefix = ids[0][: min(len(i) for i in ids)]
    while not all(i.startswith(prefix) for i in ids):
        prefix = prefix[:-1]
    if len(prefix) < 6:
        pytest.skip("the runs were created across an id-prefix boundary")
    result = home("runs", "show", prefix[:6])
    assert result.code == 1
    assert "is ambiguous" in result.err
    assert home.runs["baseline"] in result.err


def test_runs_show_ambiguous_name(home: Home) -> None:
    """A name two runs share is refused."""
    result = home("runs", "show", "dup")
    assert result.code == 1
    assert result.err.startswith("error: run name 'dup' is ambiguous")


@pytest.mark.parametrize("ref", ["0" * 32, "abcdef", "no-such-run", "abc"])
def test_runs_show_unknown_run(home: Home, ref: str) -> None:
    """An unknown id, prefix or name is a not-found error with exit 1."""
    result = home("runs", "show", ref)
    assert result.code == 1
    assert result.err.startswith("error: ")
    assert ref in result.err
    assert "Traceback" not in result.err


def test_runs_show_on_a_fresh_home(empty_home: Home) -> None:
    """Looking up a run where nothing was tracked says so, creating nothing."""
    result = empty_home("runs", "show", "abcdef")
    assert result.code == 1
    assert "nothing has been tracked there yet" in result.err
    assert not (empty_home.path / "shipyard.db").exists()
