"""The ``pyfaas`` command line."""

from pyfaas.cli.app import main

__all__ = ["main"]
