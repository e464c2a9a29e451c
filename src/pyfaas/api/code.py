"""``/v1/functions/{name}/code``: the code a function runs, as a zip a deploy accepts again."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from pyfaas.api.services import services
from pyfaas.packaging.archive import zip_directory


async def get_code(request: Request) -> Response:
    """Download a function's code (what an app deploy fetches to roll back to).
    ---
    summary: Download a function's code
    description: >
      The stored code tree, zipped the way the CLI zips a directory: uploading it again
      gives the same code_sha256 (sent as the x-pyfaas-code-sha256 header).
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    responses:
      200: {description: "application/zip"}
      404: {description: function_not_found}
    """
    functions = services(request).functions
    record = await functions.get(request.path_params["name"])
    code_dir = Path((await functions.runnable(record)).code_dir)
    content = await asyncio.to_thread(_zip, code_dir)
    return Response(
        content,
        media_type="application/zip",
        headers={"x-pyfaas-code-sha256": record.code_sha256},
    )


def _zip(directory: Path) -> bytes:
    # At most the zipped code limit (50 MB by default): held in memory like an upload's form.
    buffer = io.BytesIO()
    zip_directory(directory, buffer)
    return buffer.getvalue()
