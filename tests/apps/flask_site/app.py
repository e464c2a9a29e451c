"""A small Flask site: the WSGI app the web-app tests deploy with --wsgi app:app."""

import hashlib
import os
import time

from flask import Flask, jsonify, make_response, redirect, request, url_for

app = Flask(__name__)


@app.get("/")
def index():
    return "<h1>Hello from Flask</h1>"


@app.get("/items/<int:item_id>")
def item(item_id):
    return jsonify(id=item_id, kind="item")


@app.post("/echo")
def echo():
    return jsonify(json=request.get_json(), content_type=request.content_type)


@app.get("/search")
def search():
    return jsonify(q=request.args.get("q"), tags=request.args.getlist("tag"))


@app.post("/form")
def form():
    return jsonify(name=request.form["name"], langs=request.form.getlist("lang"))


@app.post("/upload")
def upload():
    upload = request.files["file"]
    data = upload.read()
    return jsonify(
        filename=upload.filename,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        note=request.form.get("note"),
    )


@app.get("/login")
def login():
    response = make_response(jsonify(logged_in=True))
    response.set_cookie("session", "abc123", httponly=True)
    response.set_cookie("theme", "dark")
    return response


@app.get("/whoami")
def whoami():
    return jsonify(cookies=request.cookies)


@app.get("/old")
def old():
    return redirect(url_for("new"))


@app.get("/new")
def new():
    return "the new place"


@app.get("/boom")
def boom():
    raise RuntimeError("kaboom")


@app.errorhandler(500)
def server_error(error):
    return "<h1>Flask's own error page</h1>", 500


@app.get("/logo.png")
def logo():
    response = make_response(bytes(range(256)) * 4)
    response.headers["Content-Type"] = "image/png"
    return response


@app.get("/café")
def cafe():
    return "unicode path ok"


@app.get("/request-info")
def request_info():
    context = request.environ["aws.context"]
    return jsonify(
        path=request.path,
        url=request.url,
        remote_addr=request.remote_addr,
        user_agent=request.headers.get("User-Agent"),
        custom=request.headers.get("X-Custom"),
        request_id=context.aws_request_id,
        pid=os.getpid(),
    )


@app.get("/slow")
def slow():
    time.sleep(float(request.args.get("s", "0.5")))
    return jsonify(pid=os.getpid())
