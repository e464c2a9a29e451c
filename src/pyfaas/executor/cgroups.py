"""Control groups for workers: a memory, process-count and CPU cap per worker process.

cgroup v2 when this server's own cgroup delegates the ``memory``, ``pids`` and ``cpu``
controllers; else the v1 hierarchies of those controllers when they are writable (as on
the machines this project runs on: hybrid, v1 controllers, an empty v2 tree). Each worker
gets a cgroup of its own, made when its pid is known and removed when it is stopped; every
process it starts lands in it too, so a fork bomb meets ``pids.max`` whoever runs it (root
ignores RLIMIT_NPROC). Every call here is a few writes to cgroupfs: blocking but short, so
callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

_ROOT = Path("/sys/fs/cgroup")
_V1_CONTROLLERS = ("memory", "pids", "cpu")
_CPU_PERIOD_US = 100_000
_REMOVE_TRIES = 200
_REMOVE_PAUSE_S = 0.02


@dataclass(frozen=True, slots=True)
class CgroupSupport:
    """Where workers' cgroups go (``parents``: one per hierarchy) and why, or why none."""

    version: int | None  # 2, 1, or None: not available
    parents: tuple[Path, ...]
    detail: str

    @property
    def available(self) -> bool:
        return self.version is not None


@dataclass(frozen=True, slots=True)
class WorkerCgroup:
    """One worker's cgroup (a directory per hierarchy)."""

    version: int
    paths: tuple[Path, ...]

    def add(self, pid: int) -> None:
        """Move ``pid`` (and so every process it starts from now on) in. Raises OSError."""
        if pid <= 0 or pid == os.getpid():
            # 0 means "the writer": the server would move itself in, and die with the group.
            raise OSError(f"refusing to move pid {pid} into a worker's cgroup")
        for path in self.paths:
            (path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        """Kill whatever is left in it (a process that left the worker's process group),
        then remove it (trying for up to 4 s). Blocking; never raises."""
        for path in self.paths:
            # Killed processes leave the cgroup only once they are reaped: a fork bomb's
            # thousand children take a moment.
            for _ in range(_REMOVE_TRIES):
                pids = _read_pids(path)
                for pid in pids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(_REMOVE_PAUSE_S)


def detect(root: Path = _ROOT) -> CgroupSupport:
    """Which cgroup version this process may make children in. Blocking (reads cgroupfs)."""
    own = _own_cgroups()
    v2_mount = root if (root / "cgroup.controllers").exists() else root / "unified"
    v2_path = own.get("")
    v2_problem = "no cgroup v2 hierarchy"
    if v2_path is not None and (v2_mount / "cgroup.controllers").exists():
        parent = v2_mount / v2_path.lstrip("/")
        problem = _v2_usable(parent)
        if problem is None:
            return CgroupSupport(2, (parent,), f"cgroup v2 under {parent}")
        v2_problem = f"cgroup v2: {problem}"
    parents = []
    for controller in _V1_CONTROLLERS:
        mount = root / controller
        path = own.get(controller)
        if path is None or not (mount / "cgroup.procs").exists():
            return CgroupSupport(None, (), f"{v2_problem}; no cgroup v1 {controller} hierarchy")
        parent = mount / path.lstrip("/")
        if not os.access(parent, os.W_OK):
            return CgroupSupport(None, (), f"{v2_problem}; cgroup v1 {parent} is not writable")
        parents.append(parent)
    where = ", ".join(str(p) for p in parents)
    return CgroupSupport(1, tuple(parents), f"{v2_problem}; cgroup v1 under {where}")


def create(
    support: CgroupSupport, label: str, *, memory_bytes: int, max_pids: int, cpus: float
) -> WorkerCgroup:
    """A new cgroup for one worker with its limits written. Raises OSError (nothing is
    left behind then)."""
    assert support.version is not None
    name = f"pyfaas-{label[:40]}-{secrets.token_hex(4)}"
    made: list[Path] = []
    try:
        for parent in support.parents:
            path = parent / name
            path.mkdir()
            made.append(path)
        quota = max(1000, int(cpus * _CPU_PERIOD_US))
        if support.version == 2:
            (path,) = made
            (path / "memory.max").write_text(str(memory_bytes))
            (path / "memory.swap.max").write_text("0")
            (path / "pids.max").write_text(str(max_pids))
            (path / "cpu.max").write_text(f"{quota} {_CPU_PERIOD_US}")
        else:
            memory, pids, cpu = made
            (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
            (pids / "pids.max").write_text(str(max_pids))
            (cpu / "cpu.cfs_period_us").write_text(str(_CPU_PERIOD_US))
            (cpu / "cpu.cfs_quota_us").write_text(str(quota))
    except OSError:
        for path in made:
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    return WorkerCgroup(support.version, tuple(made))


def _v2_usable(parent: Path) -> str | None:
    """Why children of ``parent`` cannot get memory/pids/cpu limits, or None."""
    try:
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
        offered = set((parent / "cgroup.controllers").read_text().split())
    except OSError as exc:
        return f"cannot read {parent}: {exc.strerror}"
    missing = {"memory", "pids", "cpu"} - enabled
    if missing - offered:
        return f"controllers {', '.join(sorted(missing - offered))} not delegated to {parent}"
    if missing:
        # Enabling controllers for children works only in a cgroup without processes of
        # its own (the "no internal processes" rule); a delegated, empty one would do.
        try:
            (parent / "cgroup.subtree_control").write_text(
                " ".join(f"+{c}" for c in sorted(missing))
            )
        except OSError as exc:
            return f"cannot enable {', '.join(sorted(missing))} in {parent}: {exc.strerror}"
    return None


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup per v1 controller, and "" for its v2 cgroup."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                found[controller] = path
    return found


def _read_pids(path: Path) -> list[int]:
    try:
        return [int(line) for line in (path / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []
