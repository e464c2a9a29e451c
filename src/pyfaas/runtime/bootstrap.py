"""A worker process: import the handler once, then run invocations one at a time.

Started by the executor as ``python -m pyfaas.runtime.bootstrap`` with a scrubbed
environment (see pyfaas.executor.environment). Speaks frames (see wire.py) on private
copies of its original stdin/stdout; its own fds 0/1/2 are /dev/null and the capture file
(see capture.py). Exits when the server closes its stdin.
"""

from __future__ import annotations

import os
import resource
import sys
import time

from pyfaas.runtime import wire
from pyfaas.runtime.capture import OutputCapture
from pyfaas.runtime.invoker import Invoker
from pyfaas.runtime.loader import HandlerLoadError, load_handler
from pyfaas.runtime.log_format import install_lambda_logging


def _protocol_fds() -> tuple[int, int]:
    """Move the protocol pipes off fds 0/1, so user code cannot read or corrupt them."""
    in_fd, out_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return in_fd, out_fd


def _limit_address_space() -> None:
    # Set before user code is imported; the executor computes the value (memory + headroom).
    limit = os.environ.pop("PYFAAS_ADDRESS_SPACE_BYTES", "")
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))


def _set_import_path(task_root: str, layer: str) -> None:
    # Code first, then its layer, then whatever PYTHONPATH gave (pyfaas itself). The working
    # directory is scratch space, not code: keep it off the import path.
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", cwd)]
    sys.path[0:0] = [task_root, *([layer] if layer else [])]


def main() -> None:
    """Run the worker until its stdin closes. Blocking; the process's whole life."""
    in_fd, out_fd = _protocol_fds()
    cap = int(os.environ.pop("PYFAAS_LOG_CAP_BYTES", "1048576"))
    capture = OutputCapture(os.getcwd(), cap)
    install_lambda_logging()
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    _set_import_path(task_root, os.environ.pop("PYFAAS_LAYER_DIR", ""))
    _limit_address_space()
    start = time.perf_counter()
    try:
        handler = load_handler(os.environ["_HANDLER"], task_root)
    except HandlerLoadError as exc:
        message = {"t": "init_error", "code": exc.code, "message": exc.message}
        wire.write_frame(out_fd, {**message, "logs": capture.take()})
        return
    init_ms = (time.perf_counter() - start) * 1000
    init_logs = capture.take()
    if init_logs:
        sys.stderr.write(init_logs)  # printed during import: goes with the first invocation
    wire.write_frame(out_fd, {"t": "ready", "init_ms": init_ms})
    invoker = Invoker(handler, capture)
    frames = wire.FrameReader(in_fd)
    while (message := frames.next()) is not None:
        wire.write_frame(out_fd, invoker.invoke(message))


if __name__ == "__main__":
    main()
