"""Log records: what a function wrote during one invocation, plus the platform's lines."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One chunk of an invocation's log (START ... END/REPORT), as stored.

    ``id`` is assigned by the store, increasing; 0 before it is stored. ``timestamp`` is
    seconds since the epoch.
    """

    function: str
    request_id: str
    timestamp: float
    text: str
    id: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "function": self.function,
            "request_id": self.request_id,
            "timestamp": self.timestamp,
            "text": self.text,
        }


def milliseconds_text(us: int) -> str:
    """``us`` microseconds as milliseconds with two decimals, half up ("0.13" for 125):
    integer arithmetic, which the store's SQL repeats (store/logs.py) so that a text search
    matches what is shown."""
    hundredths = (us + 5) // 10
    return f"{hundredths // 100}.{hundredths % 100:02d}"


def invocation_log_text(
    request_id: str,
    version: str,
    output: str,
    duration_us: int,
    billed_ms: int,
    memory_mb: int,
    max_memory_mb: int,
    init_us: int,
) -> str:
    """One invocation's whole log as Lambda writes it to CloudWatch: START, the handler's
    ``output`` (empty, or ending in a newline), END, REPORT. ``init_us`` is 0 for a warm
    start (the REPORT line then has no Init Duration)."""
    report = (
        f"REPORT RequestId: {request_id}\tDuration: {milliseconds_text(duration_us)} ms\t"
        f"Billed Duration: {billed_ms} ms\tMemory Size: {memory_mb} MB\t"
        f"Max Memory Used: {max_memory_mb} MB"
    )
    if init_us:
        report += f"\tInit Duration: {milliseconds_text(init_us)} ms"
    return (
        f"START RequestId: {request_id} Version: {version}\n{output}"
        f"END RequestId: {request_id}\n{report}\n"
    )


@dataclass(frozen=True, slots=True)
class LogQuery:
    """Which log records of one function to read.

    ``contains`` keeps records holding that text (case-sensitive substring); ``since`` and
    ``until`` bound ``timestamp`` (seconds since the epoch, inclusive); ``after_id`` is a
    cursor: only records with a greater id. ``tail`` takes the newest ``limit`` records
    instead of the first ones (the result is oldest first either way).
    """

    function: str
    request_id: str | None = None
    contains: str | None = None
    since: float | None = None
    until: float | None = None
    after_id: int = 0
    limit: int = 100
    tail: bool = False

    def matches(self, record: LogRecord) -> bool:
        """Whether ``record`` passes every filter but the cursor and the limit."""
        return (
            record.function == self.function
            and (self.request_id is None or record.request_id == self.request_id)
            and (self.contains is None or self.contains in record.text)
            and (self.since is None or record.timestamp >= self.since)
            and (self.until is None or record.timestamp <= self.until)
        )


@dataclass(frozen=True, slots=True)
class LogStats:
    """What a server lost of a function's log output since it started.

    ``truncated_bytes``: cut by the per-invocation cap (``log_bytes_per_invocation``) in the
    worker. ``dropped_bytes``: handler output the server's log buffer had no room for.
    ``dropped_records``: whole invocation logs dropped (the buffer was full even for the
    START/END/REPORT lines). ``invocations_with_loss``: invocations that lost any of these.
    """

    truncated_bytes: int = 0
    dropped_bytes: int = 0
    dropped_records: int = 0
    invocations_with_loss: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "log_truncated_bytes": self.truncated_bytes,
            "log_dropped_bytes": self.dropped_bytes,
            "log_dropped_records": self.dropped_records,
            "log_invocations_with_loss": self.invocations_with_loss,
        }
