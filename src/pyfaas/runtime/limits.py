"""Limits a worker puts on itself before it imports anything of the function.

The executor says what they are in PYFAAS_* variables (removed from os.environ here); a
template applies them once and its forked workers inherit them. Stdlib only: this runs in
every cold start.
"""

from __future__ import annotations

import os
import resource

_ENV = (
    ("PYFAAS_FILE_LIMIT", resource.RLIMIT_NOFILE),
    ("PYFAAS_PROCESS_LIMIT", resource.RLIMIT_NPROC),
    ("PYFAAS_FILE_SIZE_LIMIT", resource.RLIMIT_FSIZE),
)
_cpu_budget_s = 0


def drop_privileges() -> None:
    """In a sandbox of a server running as root: become the function's own uid (and gid),
    with no supplementary groups. Irreversible; every capability goes with root."""
    uid = os.environ.pop("PYFAAS_SANDBOX_UID", "")
    if uid:
        os.setgroups([])
        os.setgid(int(uid))
        os.setuid(int(uid))


def apply_limits() -> None:
    """RLIMIT_NOFILE, NPROC and FSIZE from the environment, soft and hard alike (a handler
    cannot raise them again); remember the CPU budget for :func:`limit_cpu`."""
    global _cpu_budget_s
    for name, which in _ENV:
        value = os.environ.pop(name, "")
        if value:
            resource.setrlimit(which, (int(value), int(value)))
    _cpu_budget_s = int(os.environ.pop("PYFAAS_CPU_BUDGET_S", "0"))


def limit_cpu(cpu_used_s: float) -> None:
    """Before an invocation: allow this process (and any child it forks) the invocation's
    CPU budget beyond what it has used; past it the kernel stops it (SIGXCPU, then SIGKILL),
    even where nothing else watches it."""
    if _cpu_budget_s:
        soft = int(cpu_used_s) + _cpu_budget_s
        resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
