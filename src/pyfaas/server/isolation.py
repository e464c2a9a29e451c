"""Finding out, once at start, what isolation this machine gives workers, and saying so."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

from pyfaas.executor.sandbox import Isolation, detect
from pyfaas.model import ConfigurationError

log = logging.getLogger("pyfaas.isolation")


async def start_isolation(mode: str, home: Path) -> Isolation:
    """Probe the machine (in a thread) and log what is enforced, loudly what is not.

    Raises ConfigurationError when ``mode`` is ``required`` and the sandbox cannot run.
    """
    salt = hashlib.sha256(str(home).encode()).hexdigest()[:16]  # home is absolute
    isolation = await asyncio.to_thread(detect, mode, salt)
    if mode == "required" and not isolation.sandboxed:
        sandbox = next(m for m in isolation.mechanisms if m.name == "bubblewrap sandbox")
        raise ConfigurationError(
            f"sandbox = required, but workers cannot be sandboxed: {sandbox.detail}"
        )
    for mechanism in isolation.mechanisms:
        if mechanism.enforced:
            log.info("isolation: %s: %s", mechanism.name, mechanism.detail)
        else:
            log.warning("isolation NOT ENFORCED: %s: %s", mechanism.name, mechanism.detail)
    if isolation.missing:
        log.warning(
            "starting anyway with %d isolation mechanism(s) missing; `pyfaas doctor` lists them",
            len(isolation.missing),
        )
    return isolation
