"""The Lambda operations pyfaas does not implement, so that a call of one is answered with its
name (UnsupportedOperationException, HTTP 400) rather than a bare 404 or a 500."""

from __future__ import annotations

import re

from starlette.responses import Response

from pyfaas.api.lambda_api.errors import LambdaApiError, unsupported
from pyfaas.api.lambda_api.operation import LambdaCall

# METHOD path Operation, from botocore's Lambda service model.
_OPERATIONS = """
POST /2015-03-31/functions/{FunctionName}/policy AddPermission
GET /2015-03-31/functions/{FunctionName}/policy GetPolicy
DELETE /2015-03-31/functions/{FunctionName}/policy/{StatementId} RemovePermission
GET /2017-03-31/tags/{Resource} ListTags
POST /2017-03-31/tags/{Resource} TagResource
DELETE /2017-03-31/tags/{Resource} UntagResource
GET /2018-10-31/layers ListLayers
GET /2018-10-31/layers/{LayerName}/versions ListLayerVersions
POST /2018-10-31/layers/{LayerName}/versions PublishLayerVersion
GET /2018-10-31/layers/{LayerName}/versions/{VersionNumber} GetLayerVersion
DELETE /2018-10-31/layers/{LayerName}/versions/{VersionNumber} DeleteLayerVersion
GET /2018-10-31/layers/{LayerName}/versions/{VersionNumber}/policy GetLayerVersionPolicy
POST /2018-10-31/layers/{LayerName}/versions/{VersionNumber}/policy AddLayerVersionPermission
DELETE /2018-10-31/layers/{Name}/versions/{N}/policy/{Id} RemoveLayerVersionPermission
GET /2020-04-22/code-signing-configs ListCodeSigningConfigs
POST /2020-04-22/code-signing-configs CreateCodeSigningConfig
GET /2020-04-22/code-signing-configs/{Arn} GetCodeSigningConfig
PUT /2020-04-22/code-signing-configs/{Arn} UpdateCodeSigningConfig
DELETE /2020-04-22/code-signing-configs/{Arn} DeleteCodeSigningConfig
GET /2020-04-22/code-signing-configs/{Arn}/functions ListFunctionsByCodeSigningConfig
GET /2020-06-30/functions/{FunctionName}/code-signing-config GetFunctionCodeSigningConfig
PUT /2020-06-30/functions/{FunctionName}/code-signing-config PutFunctionCodeSigningConfig
DELETE /2020-06-30/functions/{FunctionName}/code-signing-config DeleteFunctionCodeSigningConfig
GET /2021-07-20/functions/{FunctionName}/runtime-management-config GetRuntimeManagementConfig
PUT /2021-07-20/functions/{FunctionName}/runtime-management-config PutRuntimeManagementConfig
POST /2021-11-15/functions/{FunctionName}/response-streaming-invocations InvokeWithResponseStream
GET /2024-08-31/functions/{FunctionName}/recursion-config GetFunctionRecursionConfig
PUT /2024-08-31/functions/{FunctionName}/recursion-config PutFunctionRecursionConfig
GET /2025-11-30/capacity-providers ListCapacityProviders
POST /2025-11-30/capacity-providers CreateCapacityProvider
GET /2025-11-30/capacity-providers/{Name} GetCapacityProvider
PUT /2025-11-30/capacity-providers/{Name} UpdateCapacityProvider
DELETE /2025-11-30/capacity-providers/{Name} DeleteCapacityProvider
GET /2025-11-30/capacity-providers/{Name}/function-versions ListFunctionVersionsByCapacityProvider
GET /2025-11-30/functions/{FunctionName}/function-scaling-config GetFunctionScalingConfig
PUT /2025-11-30/functions/{FunctionName}/function-scaling-config PutFunctionScalingConfig
GET /2025-12-01/functions/{FunctionName}/durable-executions ListDurableExecutionsByFunction
GET /2025-12-01/durable-executions/{Arn} GetDurableExecution
DELETE /2025-12-01/durable-executions/{Arn} DeleteDurableExecution
GET /2025-12-01/durable-executions/{Arn}/history GetDurableExecutionHistory
GET /2025-12-01/durable-executions/{Arn}/state GetDurableExecutionState
POST /2025-12-01/durable-executions/{Arn}/checkpoint CheckpointDurableExecution
POST /2025-12-01/durable-executions/{Arn}/pause PauseDurableExecution
POST /2025-12-01/durable-executions/{Arn}/resume ResumeDurableExecution
POST /2025-12-01/durable-executions/{Arn}/stop StopDurableExecution
POST /2025-12-01/durable-execution-callbacks/{Id}/fail SendDurableExecutionCallbackFailure
POST /2025-12-01/durable-execution-callbacks/{Id}/heartbeat SendDurableExecutionCallbackHeartbeat
POST /2025-12-01/durable-execution-callbacks/{Id}/succeed SendDurableExecutionCallbackSuccess
GET /2026-07-09/resource-policy/{Arn} GetResourcePolicy
PUT /2026-07-09/resource-policy/{Arn} PutResourcePolicy
DELETE /2026-07-09/resource-policy/{Arn} DeleteResourcePolicy
"""
_HINTS = {
    "InvokeWithResponseStream": "; use Invoke (the response comes in one piece)",
    "TagResource": " (pyfaas keeps no tags)",
}


def _table() -> list[tuple[str, re.Pattern[str], str]]:
    rows = []
    for line in _OPERATIONS.strip().splitlines():
        method, path, name = line.split()
        pattern = re.sub(r"\\\{[A-Za-z]+\\\}", "[^/]+", re.escape(path))
        rows.append((method, re.compile(f"^{pattern}/?$"), name))
    return rows


OPERATIONS = _table()
# Every dated prefix of the Lambda API, supported or not: the catch-all covers them all.
PREFIXES = (
    "2014-11-13", "2015-03-31", "2016-08-19", "2017-03-31", "2017-10-31", "2018-10-31",
    "2019-09-25", "2019-09-30", "2020-04-22", "2020-06-30", "2021-07-20", "2021-10-31",
    "2021-11-15", "2024-08-31", "2025-11-30", "2025-12-01", "2026-07-09",
)  # fmt: skip


def operation_name(method: str, path: str) -> str | None:
    """The Lambda operation ``method path`` calls, if it is one pyfaas leaves out."""
    for wanted, pattern, name in OPERATIONS:
        if wanted == method and pattern.match(path):
            return name
    return None


async def unsupported_operation(call: LambdaCall) -> Response:
    """Any other request under a Lambda API prefix: named if it is a Lambda operation."""
    request = call.request
    name = operation_name(request.method, request.url.path)
    if name is not None:
        raise unsupported(name, _HINTS.get(name, ""))
    raise LambdaApiError(
        400,
        "UnsupportedOperationException",
        f"no Lambda operation is {request.method} {request.url.path}: check the endpoint URL "
        "and the method",
        code="unsupported_operation",
    )
