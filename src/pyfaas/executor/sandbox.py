"""What keeps a function's workers in their box, and what this machine can enforce of it.

Always (any Linux): a scrubbed environment (environment.py), rlimits set by the worker
itself before the handler is imported (RLIMIT_AS, NOFILE, NPROC, FSIZE; CPU per
invocation; see runtime/limits.py) and, where the machine allows, cgroups (cgroups.py):
one per sandbox, or one per worker without a sandbox.

With bubblewrap (``bwrap``) the workers of one function version run in a sandbox of their
own: one bwrap process per version runs a zygote (runtime/zygote.py) inside new mount,
PID, IPC and UTS namespaces (and a network namespace with nothing in it for
``network: none``). The zygote forks the version's template inside the sandbox, and the
template forks its workers there, so cold starts after the first stay a fork. The mount
namespace holds only the system's libraries, the Python runtime, the function's code and
layer (read-only) and a private /tmp: a tmpfs of ``ephemeral_storage_mb``. When the server
runs as root, the zygote switches to a uid of the function's own before it runs anything
of the function (bwrap keeps CAP_SETUID/CAP_SETGID for that and nothing else).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyfaas.executor import cgroups
from pyfaas.executor.environment import (
    CAPTURE_DIR,
    CAPTURE_DIR_LOG_CAPS,
    CPU_GRACE_S,
    FILE_LIMIT,
    PROCESS_LIMIT,
    RUNTIME_PATH,
)
from pyfaas.model import FunctionVersion

SANDBOX_MODES = ("auto", "off", "required")
# Functions' uids when the server runs as root: well above any system or login account.
UID_BASE = 200_000
UID_RANGE = 1_000_000
_PROBE_TIMEOUT_S = 10.0
# System directories every sandbox sees (read-only; those missing are skipped).
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
_ETC_FILES = (
    "/etc/alternatives",
    "/etc/ca-certificates",
    "/etc/ssl",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/mime.types",
)


@dataclass(frozen=True, slots=True)
class Mechanism:
    """One isolation mechanism and whether workers on this server get it."""

    name: str
    enforced: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "enforced": self.enforced, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Isolation:
    """What this server enforces on workers (see :func:`detect`).

    ``bwrap``: the bubblewrap binary when workers run sandboxed, else None. ``uid_salt``
    makes function uids differ between servers on one machine.
    """

    mode: str
    bwrap: str | None
    as_root: bool
    cgroups: cgroups.CgroupSupport
    mechanisms: tuple[Mechanism, ...]
    uid_salt: str = ""

    @property
    def sandboxed(self) -> bool:
        return self.bwrap is not None

    @property
    def missing(self) -> list[Mechanism]:
        return [m for m in self.mechanisms if not m.enforced]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sandbox_mode": self.mode,
            "sandboxed": self.sandboxed,
            "mechanisms": [m.to_dict() for m in self.mechanisms],
        }

    def uid(self, function: str) -> int | None:
        """The uid ``function``'s sandboxed workers run as (None: the server's own)."""
        if not (self.sandboxed and self.as_root):
            return None
        digest = hashlib.sha256(f"{self.uid_salt}\0{function}".encode()).digest()
        return UID_BASE + int.from_bytes(digest[:8], "big") % UID_RANGE


def unsandboxed(mode: str = "off") -> Isolation:
    """No sandbox, no cgroups: what a worker gets from rlimits alone (for tests, bench)."""
    support = cgroups.CgroupSupport(None, (), "not used")
    return Isolation(mode, None, os.geteuid() == 0, support, _mechanisms(None, support, mode))


def detect(mode: str = "auto", uid_salt: str = "") -> Isolation:
    """Probe bubblewrap, namespaces and cgroups. Blocking (runs bwrap once): call it in a
    thread. ``mode``: ``off`` never sandboxes, ``auto`` sandboxes when bwrap works,
    ``required`` too (the caller refuses to start without it)."""
    support = cgroups.detect()
    bwrap, problem = (None, "turned off (sandbox = off)") if mode == "off" else _probe_bwrap()
    isolation = Isolation(
        mode=mode,
        bwrap=bwrap,
        as_root=os.geteuid() == 0,
        cgroups=support,
        mechanisms=_mechanisms(bwrap, support, problem),
        uid_salt=uid_salt,
    )
    return isolation


def _probe_bwrap() -> tuple[str | None, str]:
    path = shutil.which("bwrap")
    if path is None:
        return None, "bwrap not found (install the bubblewrap package)"
    argv = [path, "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "--unshare-ipc"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--die-with-parent", "true"]
    try:
        probe = subprocess.run(
            argv, capture_output=True, timeout=_PROBE_TIMEOUT_S, check=False, env={}
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{path} cannot run: {exc}"
    if probe.returncode != 0:
        said = probe.stderr.decode(errors="replace").strip() or f"exit {probe.returncode}"
        return None, f"{path} cannot create namespaces here: {said}"
    return path, path


def _mechanisms(
    bwrap: str | None, support: cgroups.CgroupSupport, problem: str
) -> tuple[Mechanism, ...]:
    as_root = os.geteuid() == 0
    boxed = bwrap is not None
    no_box = f"no sandbox: {problem}"
    return (
        Mechanism("scrubbed environment", True, "only the function's and Lambda's variables"),
        Mechanism("bubblewrap sandbox", boxed, problem),
        Mechanism(
            "mount namespace",
            boxed,
            "only system libraries, Python, the function's code and layer, a private /tmp"
            if boxed
            else f"{no_box}; workers see the whole file system",
        ),
        Mechanism(
            "read-only code",
            boxed,
            "code and layers bound read-only"
            if boxed
            else f"{no_box}; code files are mode 0444 but the worker's user may change that",
        ),
        Mechanism(
            "pid namespace",
            boxed,
            "workers see only their version's processes"
            if boxed
            else f"{no_box}; /proc shows every process",
        ),
        Mechanism(
            "network: none",
            boxed,
            "an empty network namespace" if boxed else f"{no_box}; network: none is refused",
        ),
        Mechanism(
            "uid per function",
            boxed and as_root,
            "a uid of its own per function"
            if boxed and as_root
            else ("bwrap maps the server's uid" if boxed else no_box),
        ),
        Mechanism(
            "/tmp size (ephemeral storage)",
            True,
            "a tmpfs of ephemeral_storage_mb per version, and RLIMIT_FSIZE per file"
            if boxed
            else f"RLIMIT_FSIZE per file only ({no_box}; the total is not bounded)",
        ),
        Mechanism("RLIMIT_AS", True, "memory_mb plus headroom; MemoryError past it"),
        Mechanism("RLIMIT_NOFILE", True, f"{FILE_LIMIT} open files"),
        Mechanism(
            "RLIMIT_NPROC",
            boxed or not as_root,
            f"{PROCESS_LIMIT} processes per uid"
            if boxed or not as_root
            else "set, but ignored for root (workers run as the server's root)",
        ),
        Mechanism(
            "RLIMIT_CPU", True, f"the invocation's timeout plus {CPU_GRACE_S} s of CPU per call"
        ),
        Mechanism(
            "cgroup memory/pids/cpu",
            support.available,
            (
                "per sandbox (version): its workers' memory and /tmp, "
                f"{PROCESS_LIMIT} tasks + a few per worker, all CPUs but half of one; "
                if boxed
                else f"per worker: memory_mb + /tmp, {PROCESS_LIMIT} tasks, 1 CPU; "
            )
            + support.detail
            if support.available
            else support.detail,
        ),
    )


def sandbox_argv(
    isolation: Isolation, fv: FunctionVersion, python: str, log_cap_bytes: int
) -> list[str]:
    """The bwrap command line before the command that runs inside: ``fv``'s sandbox.
    ``log_cap_bytes``: the most of one invocation's output that is kept."""
    assert isolation.bwrap is not None
    argv = [isolation.bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc"]
    argv += ["--unshare-uts", "--hostname", "pyfaas", "--unshare-cgroup-try"]
    if fv.network == "none":
        argv.append("--unshare-net")
    if isolation.uid(fv.name) is not None:
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    for path in _SYSTEM_DIRS:
        argv += ["--ro-bind-try", path, path]
    for path in _ETC_FILES:
        argv += ["--ro-bind-try", path, path]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--perms", "01777", "--size", str(fv.ephemeral_storage_mb << 20), "--tmpfs", "/tmp"]
    capture_bytes = max(64 << 20, CAPTURE_DIR_LOG_CAPS * log_cap_bytes)
    argv += ["--perms", "01777", "--size", str(capture_bytes), "--tmpfs", CAPTURE_DIR]
    binds = _distinct_roots(
        [
            sys.base_prefix,
            sys.prefix,
            RUNTIME_PATH,
            str(Path(python).parent),
            fv.code_dir,
            *([fv.layer_dir] if fv.layer_dir else []),
        ]
    )
    for ancestor in _ancestors(binds):
        argv += ["--perms", "0755", "--dir", ancestor]
    for path in binds:
        argv += ["--ro-bind", path, path]
    argv += ["--chdir", "/tmp"]
    return argv


def _distinct_roots(paths: list[str]) -> list[str]:
    """``paths`` resolved, without those inside another one or in a system directory."""
    resolved = sorted({str(Path(p).resolve()) for p in paths})
    kept: list[str] = []
    for path in resolved:
        covered = (*_SYSTEM_DIRS, *kept)
        if not any(path == root or path.startswith(root + "/") for root in covered):
            kept.append(path)
    return kept


def _ancestors(paths: list[str]) -> list[str]:
    """Directories to make (world-traversable) so that ``paths`` can be bound."""
    found: set[str] = set()
    for path in paths:
        for parent in Path(path).parents:
            text = str(parent)
            if text not in ("/", "/tmp") and not any(
                text == s or text.startswith(s + "/") for s in _SYSTEM_DIRS
            ):
                found.add(text)
    return sorted(found, key=lambda p: (p.count("/"), p))
