"""What a run records about its code and environment, captured at start.

Code: git commit, branch, remote, dirty flag, the uncommitted diff (capped; the
full text goes to the blob store when one is given) and untracked files,
entry point and argv. Environment: Python, installed packages, host, CPU,
memory, GPU (from ``nvidia-smi`` when present; torch is never imported here).
Each probe is best effort: a failure leaves its field out, never raises.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_DIFF_BYTES = 1_000_000
MAX_UNTRACKED = 200
_GIT_TIMEOUT = 10.0


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.decode("utf-8", "replace")


def _strip_credentials(url: str) -> str:
    """``https://user:token@host/repo`` -> ``https://host/repo``: never store secrets."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


_PACKAGE = Path(__file__).resolve().parents[1]  # the shipyard package


def entry_point() -> str:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return str(Path(path).resolve()) if path else (sys.argv[0] if sys.argv else "")


def capture_code(
    cwd: Path | None = None, put_blob: Callable[[bytes], str] | None = None
) -> dict[str, Any]:
    """The code version of the working tree that holds the entry point (or cwd)."""
    code: dict[str, Any] = {"entry_point": entry_point(), "argv": list(sys.argv)}
    with contextlib.suppress(OSError):
        code["cwd"] = os.getcwd()
    entry = Path(code["entry_point"]) if code["entry_point"] else None
    # a console script beside the interpreter, or the shipyard command run as a
    # module: the code it runs is in the working directory, not where they live
    if entry is not None and (
        entry.parent == Path(sys.executable).parent or entry.is_relative_to(_PACKAGE)
    ):
        entry = None
    where = cwd or (entry.parent if entry is not None else Path.cwd())
    if not isinstance(where, Path) or not where.is_dir():
        where = Path.cwd()
    if shutil.which("git") is None:
        return code
    root = _git(["rev-parse", "--show-toplevel"], where)
    if root is None:
        return code
    top = Path(root.strip())
    code["git_root"] = str(top)
    commit = _git(["rev-parse", "HEAD"], top)
    if commit:
        code["git_commit"] = commit.strip()
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], top)
    if branch:
        code["git_branch"] = branch.strip()
    remote = _git(["config", "--get", "remote.origin.url"], top)
    if remote:
        code["git_remote"] = _strip_credentials(remote.strip())
    diff = _git(["diff", "HEAD", "--no-color", "--no-ext-diff"], top) if commit else None
    if diff is None and not commit:
        diff = _git(["diff", "--cached", "--no-color"], top)
    untracked_raw = _git(["ls-files", "--others", "--exclude-standard"], top) or ""
    untracked = [line for line in untracked_raw.splitlines() if line]
    code["git_dirty"] = bool(diff) or bool(untracked)
    if diff:
        data = diff.encode("utf-8")
        code["git_diff_bytes"] = len(data)
        if put_blob is not None:
            with contextlib.suppress(Exception):
                code["git_diff_digest"] = put_blob(data)
        if len(data) > MAX_DIFF_BYTES:
            code["git_diff_truncated"] = True
            data = data[:MAX_DIFF_BYTES]
        code["git_diff"] = data.decode("utf-8", "replace")
    if untracked:
        code["git_untracked"] = untracked[:MAX_UNTRACKED]
        code["git_untracked_count"] = len(untracked)
    return code


def _packages() -> dict[str, str]:
    from importlib import metadata

    out: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            out[str(name)] = dist.version
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _gpus() -> list[dict[str, str]]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,memory.total,driver_version",
                "--format=csv,noheader",
            ],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.stdout.decode().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "memory": parts[1], "driver": parts[2]})
    return gpus


def capture_environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
    }
    with contextlib.suppress(Exception):
        import psutil

        env["memory_bytes"] = int(psutil.virtual_memory().total)
    with contextlib.suppress(Exception):
        env["packages"] = _packages()
    gpus = _gpus()
    if gpus:
        env["gpus"] = gpus
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        env["cuda_visible_devices"] = os.environ["CUDA_VISIBLE_DEVICES"]
    return env
