"""A small FastAPI site: the ASGI app the web-app tests deploy with --asgi main:app.

Its lifespan records startup and shutdown (in the file LIFESPAN_LOG names, if set) and
may take STARTUP_DELAY_S seconds, so the tests can see it run once per worker.
"""

import asyncio
import hashlib
import os
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)


def _record(line):
    path = os.environ.get("LIFESPAN_LOG")
    if path:
        with open(path, "a") as log:
            log.write(f"{line} {os.getpid()}\n")


@asynccontextmanager
async def lifespan(app):
    await asyncio.sleep(float(os.environ.get("STARTUP_DELAY_S", "0")))
    _record("startup")
    yield {"started_pid": os.getpid(), "calls": [0], "started_at": time.time()}
    _record("shutdown")


app = FastAPI(lifespan=lifespan)


@app.api_route("/", methods=["GET", "HEAD"])
async def index():
    return HTMLResponse("<h1>Hello from FastAPI</h1>")


@app.get("/items/{item_id}")
async def item(item_id: int):
    return {"id": item_id, "kind": "item"}


@app.post("/echo")
async def echo(request: Request):
    return {"json": await request.json(), "content_type": request.headers["content-type"]}


@app.get("/search")
async def search(q: str | None = None, tag: list[str] = Query(default=[])):  # noqa: B008
    return {"q": q, "tags": tag}


@app.post("/form")
async def form(name: str = Form(), lang: list[str] = Form(default=[])):  # noqa: B008
    return {"name": name, "langs": lang}


@app.post("/upload")
async def upload(file: UploadFile = File(), note: str = Form(default="")):  # noqa: B008
    data = await file.read()
    return {
        "filename": file.filename,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": note,
    }


@app.post("/count-chunks")
async def count_chunks(request: Request):
    chunks = [len(chunk) async for chunk in request.stream() if chunk]
    return {"chunks": len(chunks), "size": sum(chunks)}


@app.get("/login")
async def login():
    response = JSONResponse({"logged_in": True})
    response.set_cookie("session", "abc123", httponly=True)
    response.set_cookie("theme", "dark")
    return response


@app.get("/whoami")
async def whoami(request: Request):
    return {"cookies": request.cookies}


@app.get("/old")
async def old(request: Request):
    # url_for knows the root path the app is mounted at (/fn/NAME behind a function URL).
    return RedirectResponse(request.url_for("new").path, status_code=302)


@app.get("/new")
async def new():
    return PlainTextResponse("the new place")


@app.get("/boom")
async def boom():
    raise RuntimeError("kaboom")


@app.exception_handler(Exception)
async def server_error(request, exc):
    return HTMLResponse("<h1>FastAPI's own error page</h1>", status_code=500)


@app.get("/logo.png")
async def logo():
    return Response(bytes(range(256)) * 4, media_type="image/png")


@app.get("/stream")
async def stream():
    async def lines():
        for i in range(5):
            await asyncio.sleep(0)
            yield f"line {i}\n"

    return StreamingResponse(lines(), media_type="text/plain")


@app.get("/worker")
async def worker(request: Request):
    request.state.calls[0] += 1
    return {
        "pid": os.getpid(),
        "loop": id(asyncio.get_running_loop()),
        "started_pid": request.state.started_pid,
        "calls": request.state.calls[0],
    }


@app.get("/request-info")
async def request_info(request: Request):
    return {
        "path": request.url.path,
        "url": str(request.url),
        "client": request.client.host,
        "user_agent": request.headers.get("user-agent"),
        "custom": request.headers.get("x-custom"),
        "request_id": request.scope["aws.context"].aws_request_id,
    }


@app.get("/slow")
async def slow(s: float = 0.5):
    await asyncio.sleep(s)
    return {"pid": os.getpid()}
