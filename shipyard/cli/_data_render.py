"""Formatting for ``shipyard data``: versions, change lists, lineage, transfers, progress.

Kept apart from the commands so that each stays short; nothing here touches a
store. Digests print as their first :data:`SHORT_DIGEST` hex digits in tables
and whole in JSON.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.text import Text

from shipyard.cli._render import fmt_duration, fmt_size, fmt_time, status_text, table
from shipyard.types import Dataset, DatasetVersion, Run

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from shipyard.blobs import ManifestEntry
    from shipyard.data import Changes
    from shipyard.data._remote import TransferReport

__all__ = [
    "LIST_LIMIT",
    "MIN_PROGRESS_BYTES",
    "SHORT_DIGEST",
    "ByteProgress",
    "change_lines",
    "changes_json",
    "describe",
    "entries_table",
    "entry_json",
    "lineage_table",
    "lineage_view",
    "ref",
    "run_row_json",
    "transfer_json",
    "transfer_line",
    "version_json",
    "versions_table",
]

SHORT_DIGEST = 12
#: ``data status`` lists this many paths of each kind, then "... and N more".
LIST_LIMIT = 20
#: Work smaller than this finishes too fast for a progress bar to be worth drawing.
MIN_PROGRESS_BYTES = 8 << 20
_MARKS = (("added", "A"), ("modified", "M"), ("deleted", "D"))


def ref(name: str, version: DatasetVersion) -> str:
    """``rides@3``."""
    return f"{name}@{version.version}"


def describe(v: DatasetVersion) -> str:
    """``3 files, 1.2 MiB``."""
    files = "1 file" if v.num_files == 1 else f"{v.num_files:,} files"
    return f"{files}, {fmt_size(v.size)}"


def version_json(name: str, v: DatasetVersion) -> dict[str, Any]:
    return {
        "dataset": name,
        "version": v.version,
        "ref": ref(name, v),
        "id": v.id,
        "digest": v.digest,
        "num_files": v.num_files,
        "size": v.size,
        "message": v.message,
        "source": v.source,
        "run_id": v.run_id,
        "metadata": dict(v.metadata),
        "created_at": v.created_at,
    }


def entry_json(e: ManifestEntry) -> dict[str, Any]:
    return {"path": e.path, "size": e.size, "digest": e.digest, "mode": f"{e.mode:o}"}


def changes_json(c: Changes) -> dict[str, Any]:
    return {
        "added": list(c.added),
        "modified": list(c.modified),
        "deleted": list(c.deleted),
        "unchanged": c.unchanged,
        "bytes_added": c.bytes_added,
    }


def run_row_json(run: Run, experiment: str | None, role: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": run.id,
        "name": run.name,
        "status": run.status.value,
        "experiment_id": run.experiment_id,
        "experiment": experiment,
    }
    if role is not None:
        out["role"] = role
    return out


def change_lines(c: Changes, limit: int | None = None, indent: str = "  ") -> list[str]:
    """``A path`` / ``M path`` / ``D path`` lines, at most ``limit`` of each kind
    followed by ``... and N more``."""
    lines: list[str] = []
    for field, mark in _MARKS:
        paths: tuple[str, ...] = getattr(c, field)
        shown = paths if limit is None else paths[:limit]
        lines.extend(f"{indent}{mark} {p}" for p in shown)
        if len(paths) > len(shown):
            lines.append(f"{indent}  ... and {len(paths) - len(shown):,} more {field}")
    return lines


def entries_table(entries: Iterable[ManifestEntry]) -> Table:
    t = table("path", "size", "digest")
    t.columns[1].justify = "right"
    t.columns[1].no_wrap = t.columns[2].no_wrap = True
    for e in entries:
        t.add_row(Text(e.path), fmt_size(e.size), Text(e.digest[:SHORT_DIGEST], style="dim"))
    return t


def versions_table(
    rows: Sequence[tuple[Dataset, DatasetVersion | None]], *, with_name: bool
) -> Table:
    """One row per version (``data log``) or per dataset's latest (``data list``)."""
    head = ("dataset", "latest") if with_name else ("version",)
    t = table(*head, "digest", "files", "size", "created", "run", "message")
    for i, column in enumerate(t.columns):
        if column.header in ("version", "latest", "files", "size"):
            column.justify = "right"
        if column.header != "message":
            column.no_wrap = t.columns[i].no_wrap = True
    for ds, v in rows:
        name = [Text(ds.name, style="bold")] if with_name else []
        if v is None:
            t.add_row(*name, "-", "", "", "", "", "", Text("no versions", style="dim"))
            continue
        t.add_row(
            *name,
            str(v.version),
            Text(v.digest[:SHORT_DIGEST], style="dim"),
            f"{v.num_files:,}",
            fmt_size(v.size),
            fmt_time(v.created_at, short=True),
            Text(v.run_id or ""),
            Text(v.message),
        )
    return t


def lineage_table(runs: Sequence[tuple[Run, str, str | None]]) -> Table:
    """The runs that read a version: (run, role, experiment name)."""
    t = table("run", "name", "status", "experiment", "role", title="Used by")
    t.columns[0].no_wrap = t.columns[2].no_wrap = True
    for run, role, experiment in runs:
        t.add_row(
            Text(run.id),
            Text(run.name, style="bold"),
            status_text(run.status),
            Text(experiment or run.experiment_id),
            Text(role),
        )
    return t


def lineage_view(
    name: str,
    v: DatasetVersion,
    producer: Run | None,
    producer_experiment: str | None,
    used: Sequence[tuple[Run, str, str | None]],
    models: Sequence[tuple[str, int]] = (),
) -> RenderableType:
    """The version, the run that produced it, and a table of the runs that read it."""
    parts: list[RenderableType] = [
        Text.assemble(
            (ref(name, v), "bold"),
            f"  {v.digest[:SHORT_DIGEST]}  {describe(v)}  created {fmt_time(v.created_at)}",
        )
    ]
    if v.message:
        parts.append(Text(f"  {v.message}"))
    made = Text("produced by: ")
    if producer is None:
        made.append(f"no run (added from {v.source or 'elsewhere'})", style="dim")
    else:
        made.append(f"{producer.id} ")
        made.append(producer.name, style="bold")
        made.append(" ")
        made.append_text(status_text(producer.status))
        made.append(f" ({producer_experiment or producer.experiment_id})")
    parts.append(made)
    parts.append(Text(""))
    parts.append(lineage_table(used) if used else Text("Used by: no runs yet", style="dim"))
    if models:
        parts.append(Text("Model versions: " + ", ".join(f"models:/{n}/{v}" for n, v in models)))
    return Group(*parts)


# -- transfers -------------------------------------------------------------------------


def transfer_json(report: TransferReport) -> dict[str, Any]:
    return {f.name: getattr(report, f.name) for f in dataclasses.fields(report)}


def transfer_line(verb: str, remote: str, report: TransferReport) -> str:
    """``pushed 12 objects (3.4 MiB) to URL in 1.2s; 40 already there, 3 packs, 7 requests``."""
    where, there = ("to", "already there") if verb == "pushed" else ("from", "already here")
    extras = [f"{report.objects_skipped:,} {there}"]
    if report.packs_written:
        extras.append(f"{report.packs_written:,} packs written")
    extras.append(f"{report.requests:,} requests")
    return (
        f"{verb} {report.objects_moved:,} objects ({fmt_size(report.bytes_moved)}) {where} "
        f"{remote} in {fmt_duration(report.seconds)}; {', '.join(extras)}"
    )


# -- progress --------------------------------------------------------------------------


class ByteProgress:
    """A transient progress bar on stderr, fed by ``progress(done, total)`` callbacks.

    Drawn only when stderr is a terminal and the work reaches ``min_bytes``, so
    pipes, logs and quick adds stay clean. A callback whose total differs from the
    last one starts a new phase (hashing, then storing) on the same bar. Callbacks
    may come from worker threads.
    """

    def __init__(
        self,
        label: str,
        *,
        console: Console | None = None,
        min_bytes: int = MIN_PROGRESS_BYTES,
    ) -> None:
        self.label = label
        self.min_bytes = min_bytes
        self._console = console
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._total = -1

    @property
    def enabled(self) -> bool:
        if self._console is not None:
            return self._console.is_terminal
        return sys.stderr.isatty()

    def __enter__(self) -> ByteProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.stop()
                self._progress = None

    def __call__(self, done: int, total: int) -> None:
        if total < self.min_bytes or not self.enabled:
            return
        with self._lock:
            progress = self._progress
            if progress is None:
                progress = self._progress = self._start()
                self._task = progress.add_task(self.label, total=total, completed=done)
            elif self._task is not None and total != self._total:
                progress.reset(self._task, total=total, completed=done)
            elif self._task is not None:
                progress.update(self._task, completed=done)
            self._total = total

    def _start(self) -> Progress:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self._console or Console(stderr=True),
            transient=True,
        )
        progress.start()
        return progress
