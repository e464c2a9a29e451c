"""Admission, throttling, provisioned concurrency and scale to zero, above the executor."""

from pyfaas.scaling.admission import RESERVED_LIMIT, SHARED_LIMIT, Admission
from pyfaas.scaling.scaler import Scaler, ScalingStats

__all__ = ["RESERVED_LIMIT", "SHARED_LIMIT", "Admission", "Scaler", "ScalingStats"]
