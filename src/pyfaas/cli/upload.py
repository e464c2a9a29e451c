"""Uploading a bundle (a directory zipped on the fly, or a .zip) with a progress bar."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn

from pyfaas.cli.client import ApiClient, CliError
from pyfaas.packaging.archive import zip_directory


class _CountingReader:
    """A file wrapper that advances a progress bar as httpx reads it."""

    def __init__(self, file: IO[bytes], progress: Progress, task: Any) -> None:
        self._file = file
        self._progress = progress
        self._task = task

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._progress.advance(self._task, len(chunk))
        if not chunk:
            self._progress.update(
                self._task, description="installing requirements, importing the handler"
            )
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()


def upload_bundle(
    client: ApiClient, path: Path, config: dict[str, Any], *, create_only: bool, console: Console
) -> dict[str, Any]:
    """Deploy ``path`` with ``config``; return the server's description of the function."""
    with tempfile.TemporaryFile() as spool:
        if path.is_dir():
            zip_directory(path, spool)
            source: IO[bytes] = spool
        elif path.suffix == ".zip":
            source = path.open("rb")
        else:
            raise CliError(f"{path} is neither a directory nor a .zip file")
        with source:
            size = source.seek(0, 2)
            source.seek(0)
            progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                console=console,
                transient=True,
            )
            with progress:
                task = progress.add_task(f"uploading {config['name']}", total=size)
                files = {
                    "code": ("code.zip", _CountingReader(source, progress, task), "application/zip")
                }
                data = {"config": json.dumps(config)}
                if create_only:
                    response = client.request("POST", "/v1/functions", data=data, files=files)
                else:
                    response = client.request(
                        "PUT", f"/v1/functions/{config['name']}", data=data, files=files
                    )
    result: dict[str, Any] = response.json()
    return result
