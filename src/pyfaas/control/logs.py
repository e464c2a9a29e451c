"""Reading invocation logs back."""

from __future__ import annotations

from pyfaas.model import LogRecord
from pyfaas.store import Store
from pyfaas.telemetry import LogWriter


class LogQueryService:
    """Answers log queries; what was just logged is visible at once (pending writes go first)."""

    def __init__(self, store: Store, writer: LogWriter) -> None:
        self._store = store
        self._writer = writer

    async def query(
        self,
        function: str,
        *,
        request_id: str | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[LogRecord]:
        """The newest ``limit`` records (or those after ``after_id``), oldest first."""
        await self._writer.flush()
        return await self._store.query_logs(
            function,
            request_id=request_id,
            after_id=after_id,
            limit=limit,
            tail=after_id == 0,
        )
