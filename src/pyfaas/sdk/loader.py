"""Finding the Apps a Python file defines (``pyfaas deploy path/to/app.py``)."""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path

from pyfaas.sdk.app import App
from pyfaas.sdk.errors import ShippingError


def load_apps(path: Path) -> list[App]:
    """Import ``path`` as the module named after it, its directory first on sys.path (as
    ``python path`` would; its functions are then shipped as source), and return the Apps
    it defines. Raises ShippingError when it cannot be imported or defines none."""
    path = path.resolve()
    name = path.stem
    if not name.isidentifier():
        raise ShippingError(
            f"{path.name} is not importable as a module (rename it to a Python identifier, "
            "e.g. my_app.py): its functions are shipped as source and imported by name"
        )
    taken = sys.modules.get(name)
    if taken is not None and getattr(taken, "__file__", None) != str(path):
        raise ShippingError(
            f"{path.name} has the name of the module {name!r} that is already imported; "
            "rename the file"
        )
    directory = str(path.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        raise ShippingError(
            f"importing {path.name} failed at {Path(frame.filename).name}:{frame.lineno}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    apps = [value for value in vars(module).values() if isinstance(value, App)]
    if not apps:
        raise ShippingError(
            f"{path.name} defines no pyfaas App: add app = App('name') and @app.function"
        )
    return apps
