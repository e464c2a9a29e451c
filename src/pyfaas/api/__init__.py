"""HTTP surfaces of pyfaas. Thin: parse, authenticate, validate, call a service, render."""

from pyfaas.api.app import ApiServices, create_app

__all__ = ["ApiServices", "create_app"]
