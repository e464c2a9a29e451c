"""Bare WSGI callables: what pyfaas's adapter does when an app has no error page of its own."""


def raises(environ, start_response):
    raise ValueError("no error page of its own")


def lazy(environ, start_response):
    # A generator: start_response is only called once iteration begins (PEP 3333 allows it).
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Twice", "a")])
    yield b"made "
    yield b"lazily"


not_an_app = 42
