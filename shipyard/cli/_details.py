"""The info, code-version and environment sections of ``shipyard runs show``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from shipyard.cli._render import (
    fmt_duration,
    fmt_size,
    fmt_time,
    hint,
    run_duration,
    status_text,
)
from shipyard.errors import ShipyardError
from shipyard.tracking import TrackingClient
from shipyard.types import Lifecycle, Run

__all__ = ["code_section", "diff_text", "environment_section", "info_section"]


def _titled(title: str, body: Table) -> RenderableType:
    return Group(Text(title, style="bold italic"), body)


def info_section(run: Run, experiment: str | None) -> RenderableType:
    rows: list[tuple[str, str | Text]] = [
        ("id", run.id),
        ("name", Text(run.name, style="bold")),
        ("experiment", f"{experiment} ({run.experiment_id})" if experiment else run.experiment_id),
        ("status", status_text(run.status)),
    ]
    if run.lifecycle is not Lifecycle.ACTIVE:
        rows.append(("lifecycle", Text(run.lifecycle.value, style="red")))
    if run.user:
        rows.append(("user", run.user))
    rows.append(("start", fmt_time(run.start_time, relative=True)))
    if run.end_time is not None:
        rows.append(("end", fmt_time(run.end_time)))
    rows.append(("duration", fmt_duration(run_duration(run))))
    if run.parent_run_id:
        rows.append(("parent", run.parent_run_id))
    return _titled(f"Run {run.name}", _rows(rows))


def _rows(rows: list[tuple[str, str | Text]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    for key, value in rows:
        grid.add_row(key, value if isinstance(value, Text) else Text(value))
    return grid


def code_section(run: Run) -> RenderableType:
    code: Mapping[str, Any] = run.code
    if not code:
        return Text("Code version: not recorded", style="dim")
    rows: list[tuple[str, str | Text]] = []
    if "git_commit" in code:
        rows.append(("commit", str(code["git_commit"])))
    if "git_branch" in code:
        rows.append(("branch", str(code["git_branch"])))
    if "git_remote" in code:
        rows.append(("remote", str(code["git_remote"])))
    if "git_dirty" in code:
        dirty = bool(code["git_dirty"])
        rows.append(("dirty", Text("yes", style="yellow") if dirty else Text("no", style="green")))
    if "git_commit" in code or "git_root" in code:
        rows.append(("untracked files", str(code.get("git_untracked_count", 0))))
        diff_bytes = code.get("git_diff_bytes")
        if diff_bytes:
            note = " (truncated in the run record)" if code.get("git_diff_truncated") else ""
            diff_cell = f"{fmt_size(int(diff_bytes))}{note}; print it with --diff"
            rows.append(("diff", diff_cell))
        else:
            rows.append(("diff", "none"))
    else:
        rows.append(("git", "not a git working tree"))
    if code.get("entry_point"):
        rows.append(("entry point", str(code["entry_point"])))
    argv = code.get("argv")
    if isinstance(argv, list | tuple) and argv:
        rows.append(("argv", " ".join(str(a) for a in argv)))
    return _titled("Code version", _rows(rows))


def environment_section(run: Run) -> RenderableType:
    env: Mapping[str, Any] = run.environment
    if not env:
        return Text("Environment: not recorded", style="dim")
    rows: list[tuple[str, str | Text]] = []
    if "python" in env:
        impl = env.get("python_implementation")
        rows.append(("python", f"{env['python']} ({impl})" if impl else str(env["python"])))
    for key in ("host", "platform"):
        if key in env:
            rows.append((key, str(env[key])))
    if "cpu" in env or "cpu_count" in env:
        count = env.get("cpu_count")
        cpu = str(env.get("cpu", ""))
        rows.append(("cpu", f"{cpu} x {count}" if count and cpu else str(count or cpu)))
    if isinstance(env.get("memory_bytes"), int):
        rows.append(("memory", fmt_size(env["memory_bytes"])))
    gpus = env.get("gpus")
    if isinstance(gpus, list | tuple) and gpus:
        names: dict[str, int] = {}
        for g in gpus:
            name = str(g.get("name", "?")) if isinstance(g, Mapping) else str(g)
            names[name] = names.get(name, 0) + 1
        rows.append(("gpus", ", ".join(f"{n} x {name}" for name, n in names.items())))
    else:
        rows.append(("gpus", "none"))
    if "cuda_visible_devices" in env:
        rows.append(("CUDA_VISIBLE_DEVICES", str(env["cuda_visible_devices"])))
    packages = env.get("packages")
    if isinstance(packages, Mapping):
        rows.append(("packages", f"{len(packages)} installed"))
    return _titled("Environment", _rows(rows))


def diff_text(client: TrackingClient, run: Run) -> str | None:
    """The uncommitted diff recorded with a run: in full from the blob store when it
    was stored there, else the (possibly truncated) copy in the run record."""
    code: Mapping[str, Any] = run.code
    digest = code.get("git_diff_digest")
    if isinstance(digest, str):
        try:
            return client.blobs.get_bytes(digest).decode("utf-8", "replace")
        except ShipyardError as e:
            hint(f"could not read the full diff ({e}); showing the copy kept with the run")
    text = code.get("git_diff")
    return text if isinstance(text, str) and text else None
