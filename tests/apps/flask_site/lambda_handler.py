"""The same Flask app as written for AWS Lambda with apig-wsgi: a plain handler."""

from apig_wsgi import make_lambda_handler
from app import app

handler = make_lambda_handler(app, binary_support=True)
