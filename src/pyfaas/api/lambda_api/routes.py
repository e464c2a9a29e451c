"""The routes of the Lambda-compatible API, at the dated paths botocore uses."""

from __future__ import annotations

from collections.abc import Callable

from starlette.routing import Route

from pyfaas.api.lambda_api import (
    concurrency,
    event_sources,
    functions,
    invoke,
    urls,
    versions,
)
from pyfaas.api.lambda_api.operation import Operation, lambda_operation
from pyfaas.api.lambda_api.unsupported import PREFIXES, unsupported_operation
from pyfaas.api.services import ApiServices
from pyfaas.api.urls import URL_METHODS

_FN = "/2015-03-31/functions/{FunctionName}"
_ESM = "/2015-03-31/event-source-mappings"


def _route(
    path: str,
    method: str,
    operation: Operation,
    max_body: Callable[[ApiServices], int] | None = None,
) -> Route:
    return Route(
        path,
        lambda_operation(operation, max_body=max_body),
        methods=[method],
        include_in_schema=False,
    )


# The hot path: the app puts it next to the native invoke, before the other ~45 routes that
# Starlette would otherwise try one after the other (a failed match costs ~1 us).
INVOKE_ROUTE = _route(f"{_FN}/invocations", "POST", invoke.invoke, invoke.max_invoke_body)

ROUTES = [
    _route("/2015-03-31/functions", "POST", functions.create_function, functions.max_code_body),
    _route("/2015-03-31/functions", "GET", functions.list_functions),
    _route(f"{_FN}", "GET", functions.get_function),
    _route(f"{_FN}", "DELETE", functions.delete_function),
    _route(f"{_FN}/configuration", "GET", functions.get_function_configuration),
    _route(f"{_FN}/configuration", "PUT", functions.update_function_configuration),
    _route(f"{_FN}/code", "PUT", functions.update_function_code, functions.max_code_body),
    _route(f"{_FN}/versions", "POST", versions.publish_version),
    _route(f"{_FN}/versions", "GET", versions.list_versions_by_function),
    _route(f"{_FN}/aliases", "POST", versions.create_alias),
    _route(f"{_FN}/aliases", "GET", versions.list_aliases),
    _route(f"{_FN}/aliases/{{Name}}", "GET", versions.get_alias),
    _route(f"{_FN}/aliases/{{Name}}", "PUT", versions.update_alias),
    _route(f"{_FN}/aliases/{{Name}}", "DELETE", versions.delete_alias),
    _route(
        "/2014-11-13/functions/{FunctionName}/invoke-async",
        "POST",
        invoke.invoke_async,
        invoke.max_invoke_body,
    ),
    _route("/2016-08-19/account-settings", "GET", functions.get_account_settings),
    _route(
        "/2017-10-31/functions/{FunctionName}/concurrency",
        "PUT",
        concurrency.put_function_concurrency,
    ),
    _route(
        "/2019-09-30/functions/{FunctionName}/concurrency",
        "GET",
        concurrency.get_function_concurrency,
    ),
    _route(
        "/2017-10-31/functions/{FunctionName}/concurrency",
        "DELETE",
        concurrency.delete_function_concurrency,
    ),
    _route(
        "/2019-09-30/functions/{FunctionName}/provisioned-concurrency",
        "PUT",
        concurrency.put_provisioned_concurrency,
    ),
    _route(
        "/2019-09-30/functions/{FunctionName}/provisioned-concurrency",
        "GET",
        concurrency.get_provisioned_concurrency,
    ),
    _route(
        "/2019-09-30/functions/{FunctionName}/provisioned-concurrency",
        "DELETE",
        concurrency.delete_provisioned_concurrency,
    ),
    _route(
        "/2019-09-25/functions/{FunctionName}/event-invoke-config",
        "PUT",
        concurrency.put_event_invoke_config,
    ),
    _route(
        "/2019-09-25/functions/{FunctionName}/event-invoke-config",
        "POST",
        concurrency.update_event_invoke_config,
    ),
    _route(
        "/2019-09-25/functions/{FunctionName}/event-invoke-config",
        "GET",
        concurrency.get_event_invoke_config,
    ),
    _route(
        "/2019-09-25/functions/{FunctionName}/event-invoke-config",
        "DELETE",
        concurrency.delete_event_invoke_config,
    ),
    _route(
        "/2019-09-25/functions/{FunctionName}/event-invoke-config/list",
        "GET",
        concurrency.list_event_invoke_configs,
    ),
    _route("/2021-10-31/functions/{FunctionName}/url", "POST", urls.create_url_config),
    _route("/2021-10-31/functions/{FunctionName}/url", "GET", urls.get_url_config),
    _route("/2021-10-31/functions/{FunctionName}/url", "PUT", urls.update_url_config),
    _route("/2021-10-31/functions/{FunctionName}/url", "DELETE", urls.delete_url_config),
    _route("/2021-10-31/functions/{FunctionName}/urls", "GET", urls.list_url_configs),
    _route(_ESM, "POST", event_sources.create_event_source_mapping),
    _route(_ESM, "GET", event_sources.list_event_source_mappings),
    _route(f"{_ESM}/{{UUID}}", "GET", event_sources.get_event_source_mapping),
    _route(f"{_ESM}/{{UUID}}", "PUT", event_sources.update_event_source_mapping),
    _route(f"{_ESM}/{{UUID}}", "DELETE", event_sources.delete_event_source_mapping),
    # Last: whatever else is under a Lambda prefix is named and refused, never a 404 or 500.
    *(
        Route(
            f"/{prefix}/{{rest:path}}",
            lambda_operation(unsupported_operation),
            methods=URL_METHODS,
            include_in_schema=False,
        )
        for prefix in PREFIXES
    ),
]
