"""Metering: a usage record per invocation, price plans, and cost reports."""

from pyfaas.metering.activity import Activity, ActivityPoint, ActivityService
from pyfaas.metering.prices import PriceBook
from pyfaas.metering.reports import UsageQuery, UsageReport, UsageService
from pyfaas.metering.writer import UsageListener, UsageWriter, usage_record

__all__ = [
    "Activity",
    "ActivityPoint",
    "ActivityService",
    "PriceBook",
    "UsageListener",
    "UsageQuery",
    "UsageReport",
    "UsageService",
    "UsageWriter",
    "usage_record",
]
