"""The same FastAPI app as written for AWS Lambda with Mangum: a plain handler."""

from main import app
from mangum import Mangum

handler = Mangum(app)
