"""The root logger in Lambda's text format: ``[LEVEL]\\t<time>Z\\t<request id>\\t<message>``."""

from __future__ import annotations

import logging
import sys
import time

# The request being served; set by the invoker before the handler runs. A module global, not
# a contextvar: a worker serves one invocation at a time, and threads the handler starts
# should log under its request id too.
current_request_id = ""


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = current_request_id
        return True


def install_lambda_logging() -> None:
    """Give the root logger a stderr handler in Lambda's format, at level INFO."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter())
    logging.root.addHandler(handler)
    logging.root.setLevel(logging.INFO)
