"""``/v1/isolation``: what this server enforces on workers (``pyfaas doctor``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from pyfaas.api.responses import JSONResponse
from pyfaas.api.services import services
from pyfaas.model import ServiceUnavailable


async def isolation_report(request: Request) -> Response:
    """Each isolation mechanism and whether this server's workers get it.
    ---
    summary: Isolation in force (pyfaas doctor)
    responses:
      200: {description: "{sandbox_mode, sandboxed, mechanisms: [{name, enforced, detail}]}"}
      503: {description: "the server is starting"}
    """
    isolation = services(request).isolation
    if isolation is None:
        raise ServiceUnavailable("the server has not probed its isolation yet; retry")
    return JSONResponse(isolation.to_dict())
