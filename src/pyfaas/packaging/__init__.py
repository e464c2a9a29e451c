"""Code bundles (zip, content-addressed, validated) and dependency layers."""

from pyfaas.packaging.bundle import Bundle
from pyfaas.packaging.code_store import CodeStore
from pyfaas.packaging.layers import Layer

__all__ = ["Bundle", "CodeStore", "Layer"]
