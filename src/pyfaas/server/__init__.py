"""The composition root: builds every room from one ServerConfig and serves it."""

from pyfaas.server.config import ServerConfig
from pyfaas.server.runner import Server, build_app, run

__all__ = ["Server", "ServerConfig", "build_app", "run"]
