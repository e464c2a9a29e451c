"""The whole environment of a worker process: Lambda's variables, nothing of the server's."""

from __future__ import annotations

import contextvars
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyfaas
from pyfaas.model import FunctionVersion, Limits

# Where workers import pyfaas.runtime from: the very code the server runs, whatever its
# install (site-packages, a source tree on PYTHONPATH).
RUNTIME_PATH = str(Path(pyfaas.__file__).resolve().parent.parent)

# RLIMIT_AS caps address space, not resident memory. A bare worker maps ~16 MB for ~13 MB
# resident, but every thread reserves an 8 MB stack it rarely touches (8 threads: +130 MB of
# address space, +0.1 MB resident), and native libraries reserve arenas and buffers the same
# way. So the limit is memory_mb plus this headroom: a huge allocation still fails at once
# as MemoryError (Runtime.OutOfMemory), and the executor checks the worker's peak RSS after
# each call against memory_mb itself (results.from_reply). A cgroup's memory.max would be
# the exact tool, but these machines run cgroup v1 without per-process delegation.
ADDRESS_SPACE_HEADROOM_MB = 512
# A worker that serves N invocations at once may run N handler threads: their stacks too.
THREAD_STACK_MB = 8


# Lambda's limits on open files and processes per execution environment (RLIMIT_NOFILE,
# RLIMIT_NPROC, the cgroup's pids.max), and the CPU a call may use past its timeout
# (RLIMIT_CPU: the executor's timer kills it first; this is the kernel's backstop).
FILE_LIMIT = 1024
PROCESS_LIMIT = 1024
CPU_GRACE_S = 2
# In a sandbox: where workers keep their (unlinked) output capture files, a tmpfs of its own
# so that a full /tmp cannot stop a worker from reporting; it holds at most this many times
# an invocation's log cap (the rest of a flood fails to write, and would be cut anyway).
CAPTURE_DIR = "/run/pyfaas"
CAPTURE_DIR_LOG_CAPS = 16

# Variables read once, when the interpreter (or the C library) starts: a forked worker keeps
# its zygote's, so a function that sets one of these is spawned instead.
_READ_AT_START = ("PYTHON", "LD_", "MALLOC_", "LANG", "LC_", "GLIBC_TUNABLES")


# Native thread pools sized by these variables when their library loads (OpenBLAS and MKL
# under numpy, scipy and pandas; OpenMP under scikit-learn, torch...). One thread each by
# default, as a small Lambda worker has about one vCPU: with more, importing numpy starts
# threads, a template of the version is unsafe to fork from, and every worker pays the
# import again. A function that sets one of them itself keeps its value (and its workers
# are then forked from the zygote, importing on their own; see runtime/zygote.py).
SINGLE_THREADED_NATIVE_POOLS = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


# Set while workers are started ahead of demand to keep provisioned concurrency (Lambda tells
# the handler through AWS_LAMBDA_INITIALIZATION_TYPE). A context variable: every launch path
# (spawn, zygote fork, template fork) reaches worker_environment within the starting task.
STARTING_PROVISIONED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "starting_provisioned", default=False
)


def interpreter_environment() -> dict[str, str]:
    """What every worker interpreter starts with, the zygote's whole environment."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "PYTHONPATH": RUNTIME_PATH,
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        # glibc makes an arena per thread (64 MB of address space each): with RLIMIT_AS set,
        # a handler starting a few threads would hit MemoryError long before memory_mb.
        "MALLOC_ARENA_MAX": "2",
    }


def forkable(fv: FunctionVersion) -> bool:
    """False when fv's own variables must be seen at interpreter start (PYTHON*, LD_*...)."""
    return not any(name.startswith(_READ_AT_START) for name, _ in fv.environment)


def address_space_mb(fv: FunctionVersion) -> int:
    """The RLIMIT_AS of fv's workers: memory_mb, the headroom, a stack per extra thread."""
    threads = fv.concurrency_per_worker - 1
    return fv.memory_mb + ADDRESS_SPACE_HEADROOM_MB + THREAD_STACK_MB * threads


def worker_environment(
    fv: FunctionVersion,
    worker_id: str,
    scratch: Path,
    limits: Limits,
    *,
    sandboxed: bool = False,
) -> dict[str, str]:
    """The environment for one worker of ``fv``; ``fv.environment`` is applied last.
    ``sandboxed``: it runs in fv's sandbox, whose private /tmp is its home and temp dir."""
    day = datetime.now(UTC).strftime("%Y/%m/%d")
    env = {
        **interpreter_environment(),
        "HOME": "/tmp" if sandboxed else str(scratch),
        "TMPDIR": "/tmp" if sandboxed else str(scratch / "tmp"),
        "_HANDLER": fv.handler,
        "LAMBDA_TASK_ROOT": fv.code_dir,
        "LAMBDA_RUNTIME_DIR": str(Path(sys.executable).parent),
        "AWS_LAMBDA_FUNCTION_NAME": fv.name,
        "AWS_LAMBDA_FUNCTION_VERSION": fv.version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fv.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fv.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{day}/[{fv.version}]{worker_id}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": (
            "provisioned-concurrency" if STARTING_PROVISIONED.get() else "on-demand"
        ),
        "AWS_REGION": fv.region,
        "AWS_DEFAULT_REGION": fv.region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{fv.runtime}",
        # Read (and removed from os.environ) by the bootstrap before user code runs.
        "PYFAAS_LOG_CAP_BYTES": str(limits.log_bytes_per_invocation),
        "PYFAAS_ADDRESS_SPACE_BYTES": str(address_space_mb(fv) << 20),
        "PYFAAS_FILE_LIMIT": str(FILE_LIMIT),
        "PYFAAS_PROCESS_LIMIT": str(PROCESS_LIMIT),
        "PYFAAS_FILE_SIZE_LIMIT": str(fv.ephemeral_storage_mb << 20),
        "PYFAAS_CPU_BUDGET_S": str(fv.timeout_s + CPU_GRACE_S),
        **SINGLE_THREADED_NATIVE_POOLS,
    }
    if fv.layer_dir:
        env["PYFAAS_LAYER_DIR"] = fv.layer_dir
    if sandboxed:
        env["PYFAAS_CAPTURE_DIR"] = CAPTURE_DIR
    env.update(fv.environment)
    # After the function's own variables: the executor sends as many at once as this says.
    env.pop("PYFAAS_CONCURRENCY", None)
    if fv.concurrency_per_worker > 1:
        env["PYFAAS_CONCURRENCY"] = str(fv.concurrency_per_worker)
    return env
