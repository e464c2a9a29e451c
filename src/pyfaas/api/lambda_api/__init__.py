"""The AWS Lambda-compatible API: boto3, the AWS CLI and Lambda tooling talk to pyfaas at the
dated paths of Lambda's REST API (``/2015-03-31/functions...``), signed with SigV4."""

from pyfaas.api.lambda_api.routes import INVOKE_ROUTE, ROUTES
from pyfaas.api.lambda_api.sigv4 import SigV4Verifier
from pyfaas.api.lambda_api.unsupported import PREFIXES

# Paths under these belong to the Lambda API (SigV4), not to the native one (bearer token).
LAMBDA_PATH_PREFIXES = tuple(f"/{prefix}/" for prefix in PREFIXES)

__all__ = ["INVOKE_ROUTE", "LAMBDA_PATH_PREFIXES", "ROUTES", "SigV4Verifier"]
