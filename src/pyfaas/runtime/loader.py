"""Importing the handler named by ``_HANDLER`` ("module.function"): Lambda's init phase."""

from __future__ import annotations

import importlib
import os
import traceback
from collections.abc import Callable
from typing import Any


class HandlerLoadError(Exception):
    """The handler cannot be loaded. ``code`` is the deploy error code the server reports.

    Codes: handler_module_not_found, handler_not_found, handler_syntax_error,
    handler_init_error.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def load_handler(spec: str, task_root: str) -> Callable[..., Any]:
    """Import ``module.function`` once and return the function. Blocking (runs user code).

    Raises HandlerLoadError. An exception raised by the module's own top-level code has its
    traceback printed to stderr first, so it reaches the init logs the way Lambda shows it.
    """
    module_name, _, function_name = spec.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise HandlerLoadError(
                "handler_module_not_found",
                f"Unable to import module '{module_name}': No module named '{exc.name}' "
                "in the bundle (is the handler 'module.function' right?)",
            ) from None
        # The handler's module exists but imports something that does not: a missing
        # dependency, which is the module's own init error, not a wrong handler name.
        traceback.print_exc()
        raise HandlerLoadError(
            "handler_init_error",
            f"Unable to import module '{module_name}': {type(exc).__name__}: {exc}",
        ) from None
    except SyntaxError as exc:
        where = os.path.relpath(exc.filename or "?", task_root)
        raise HandlerLoadError(
            "handler_syntax_error",
            f"Syntax error in module '{module_name}': {exc.msg} ({where}, line {exc.lineno})",
        ) from None
    except BaseException as exc:  # SystemExit and friends from top-level code, too
        traceback.print_exc()
        raise HandlerLoadError(
            "handler_init_error",
            f"Unable to import module '{module_name}': {type(exc).__name__}: {exc}",
        ) from None
    handler = getattr(module, function_name, None)
    if handler is None:
        raise HandlerLoadError(
            "handler_not_found", f"Handler '{function_name}' missing on module '{module_name}'"
        )
    if not callable(handler):
        raise HandlerLoadError(
            "handler_not_found",
            f"Handler '{function_name}' on module '{module_name}' is not callable",
        )
    return handler  # type: ignore[no-any-return]
