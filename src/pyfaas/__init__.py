"""pyfaas: serverless functions for Python on your own machines."""

__version__ = "0.1.0"
