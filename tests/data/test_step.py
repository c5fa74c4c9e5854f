"""Cached preprocessing steps: run once per code, inputs and params."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard import context
from shipyard.data import DataClient
from shipyard.data._step import Step, StepResult, code_fingerprint, step, step_key
from shipyard.errors import InvalidArgumentError, NotFoundError


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DataClient:
    """A data client on a temporary SHIPYARD_HOME."""
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    uri = f"sqlite:///{home}/s.db"
    return DataClient(tracking_uri=uri, blob_uri=str(home / "blobs"), home=home)


@pytest.fixture
def rides(client: DataClient, tmp_path: Path) -> Path:
    """Dataset ``rides`` v1 (a folder of one CSV); returns the source folder."""
    src = tmp_path / "rides"
    src.mkdir()
    (src / "rides.csv").write_text("fare\n1\n3\n5\n")
    client.add(src, name="rides")
    return src


def make_step(client: DataClient, calls: list[dict[str, object]], **params: object) -> Step:
    """A step keeping fares >= min_fare from rides@latest; records each real run."""

    @step("rides-clean", inputs=["rides@latest"], params=params, client=client)
    def clean(out_dir: Path, rides: Path, *, min_fare: int = 0) -> None:
        calls.append({"min_fare": min_fare})
        rows = (rides / "rides.csv").read_text().split()[1:]
        kept = [r for r in rows if int(r) >= min_fare]
        (out_dir / "clean.csv").write_text("fare\n" + "".join(f"{r}\n" for r in kept))

    return clean


def test_second_call_is_cached(client: DataClient, rides: Path) -> None:
    """The first call runs the function; the second returns the same version unrun."""
    calls: list[dict[str, object]] = []
    clean = make_step(client, calls, min_fare=2)
    first = clean()
    assert isinstance(first, StepResult)
    assert not first.cached
    assert (first.path / "clean.csv").read_text() == "fare\n3\n5\n"
    second = clean()
    assert second.cached
    assert second.version == first.version
    assert (second.path / "clean.csv").read_text() == "fare\n3\n5\n"
    assert len(calls) == 1
    meta = first.version.metadata
    assert meta["step"] == "rides-clean"
    assert meta["key"] == first.key == clean.key()
    assert meta["inputs"][0]["ref"] == "rides@latest"


def test_changed_params_rerun(client: DataClient, rides: Path) -> None:
    """Other params (at decoration or call time) are another key and run again."""
    calls: list[dict[str, object]] = []
    clean = make_step(client, calls, min_fare=2)
    a = clean()
    b = clean(min_fare=4)
    assert calls == [{"min_fare": 2}, {"min_fare": 4}]
    assert not b.cached
    assert b.version.version == 2
    assert (b.path / "clean.csv").read_text() == "fare\n5\n"
    assert clean(min_fare=2).version == a.version
    assert len(calls) == 2


def test_new_input_version_reruns(client: DataClient, rides: Path) -> None:
    """A new version of an input changes the key; the function runs on the new data."""
    calls: list[dict[str, object]] = []
    clean = make_step(client, calls, min_fare=2)
    clean()
    (rides / "rides.csv").write_text("fare\n1\n7\n")
    client.add(rides, name="rides")
    result = clean()
    assert not result.cached
    assert (result.path / "clean.csv").read_text() == "fare\n7\n"
    assert len(calls) == 2


def test_changed_code_reruns(client: DataClient, rides: Path) -> None:
    """Another function body under the same step name is another key."""
    calls: list[int] = []

    @step("rides-clean", inputs=["rides@latest"], client=client)
    def v1(out_dir: Path, rides: Path) -> None:
        calls.append(1)
        (out_dir / "out.txt").write_text("one")

    @step("rides-clean", inputs=["rides@latest"], client=client)
    def v2(out_dir: Path, rides: Path) -> None:
        calls.append(2)
        (out_dir / "out.txt").write_text("two")

    assert v1.key() != v2.key()
    v1()
    result = v2()
    assert calls == [1, 2]
    assert (result.path / "out.txt").read_text() == "two"


def test_identical_output_reuses_the_version(client: DataClient, rides: Path) -> None:
    """A re-run whose output equals the latest version adds no new version."""

    @step("same", client=client, params={"x": 1})
    def first(out_dir: Path, *, x: int) -> None:
        (out_dir / "out.txt").write_text("constant")

    a = first()
    b = first(x=2)
    assert not b.cached
    assert b.version == a.version
    assert [v.version for v in client.log("same")] == [1]
    assert client.store.get_step_result(b.key) == a.version.id


def test_failure_leaves_no_version_and_no_cache_entry(client: DataClient, rides: Path) -> None:
    """A function that raises leaves no version, no cache entry and no scratch files."""

    @step("broken", inputs=["rides@latest"], client=client)
    def broken(out_dir: Path, rides: Path) -> None:
        (out_dir / "half.txt").write_text("partial")
        raise RuntimeError("boom")

    key = broken.key()
    with pytest.raises(RuntimeError, match="boom"):
        broken()
    assert client.store.get_step_result(key) is None
    with pytest.raises(NotFoundError):
        client.dataset("broken")
    assert not any((client.home / "tmp").iterdir())


def test_inputs_and_output_are_recorded_on_the_active_run(client: DataClient, rides: Path) -> None:
    """With a run active, inputs are logged as 'step-input' and the output names the run."""
    store = client.store
    project = store.get_or_create_project(client.project)
    run = store.create_run(store.get_or_create_experiment(project.id, "prep").id)
    calls: list[dict[str, object]] = []
    context.push_run(run.id)
    try:
        result = make_step(client, calls)()
    finally:
        context.pop_run(run.id)
    assert result.version.run_id == run.id
    inputs = store.list_run_inputs(run.id)
    assert [(i.dataset_version_id, i.role) for i in inputs] == [
        (client.resolve("rides@1").id, "step-input")
    ]


def test_single_file_inputs_are_passed_as_files(client: DataClient, tmp_path: Path) -> None:
    """An input versioned from one file reaches the function as that file's path."""
    src = tmp_path / "fares.txt"
    src.write_text("1 2 3")
    client.add(src, name="fares")
    seen: list[Path] = []

    @step("sum", inputs=["fares"], client=client)
    def total(out_dir: Path, fares: Path) -> None:
        seen.append(fares)
        (out_dir / "sum.txt").write_text(str(sum(map(int, fares.read_text().split()))))

    assert (total().path / "sum.txt").read_text() == "6"
    assert seen[0].name == "fares.txt"


def test_step_key_is_stable_and_sensitive() -> None:
    """The key ignores param order and changes with name, inputs, params or code."""

    def fn(out_dir: Path) -> None:
        pass

    def other(out_dir: Path) -> None:
        print("x")

    base = step_key("s", fn, ["a" * 64], {"x": 1, "y": [1, 2]})
    assert base == step_key("s", fn, ["a" * 64], {"y": [1, 2], "x": 1})
    assert len(base) == 64
    variants = [
        step_key("t", fn, ["a" * 64], {"x": 1, "y": [1, 2]}),
        step_key("s", fn, ["b" * 64], {"x": 1, "y": [1, 2]}),
        step_key("s", fn, ["a" * 64], {"x": 2, "y": [1, 2]}),
        step_key("s", other, ["a" * 64], {"x": 1, "y": [1, 2]}),
    ]
    assert len({base, *variants}) == 5


def test_code_fingerprint_falls_back_to_bytecode() -> None:
    """Without source (e.g. code typed in a REPL) the bytecode stands for the code."""
    namespace: dict[str, object] = {}
    exec("def f(out_dir):\n    return {'a', 'b'}\n", namespace)
    exec("def g(out_dir):\n    return {'a', 'c'}\n", namespace)
    f, g = namespace["f"], namespace["g"]
    assert callable(f)
    assert callable(g)
    assert code_fingerprint(f).startswith("bytecode:")
    assert code_fingerprint(f) != code_fingerprint(g)


def test_decorator_lines_are_not_part_of_the_code() -> None:
    """The fingerprint starts at ``def``: decorator arguments are hashed on their own."""

    @step("x", params={"a": 1})
    def f(out_dir: Path) -> None:
        pass

    assert code_fingerprint(f.fn).startswith("def f(")


def test_invalid_arguments_are_refused() -> None:
    """Non-JSON params and a bare string as inputs fail at decoration time."""
    with pytest.raises(InvalidArgumentError, match="JSON values"):
        step("s", params={"p": Path("x")})
    with pytest.raises(InvalidArgumentError, match=r"inputs=\['rides'\]"):
        step("s", inputs="rides")


@pytest.fixture(autouse=True)
def _no_active_run() -> Iterator[None]:
    """Tests start and end without an active run."""
    assert context.active_run_id() is None
    yield
    assert context.active_run_id() is None
