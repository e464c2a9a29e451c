"""Published versions and aliases: what ``name:3`` and ``name:live`` mean.

``$LATEST`` is the function as deployed, and changes with each deploy. Publishing snapshots
it (code and configuration) as an immutable numbered version; numbers are never reused. An
alias names one version and may send a share of its traffic to a second one (Lambda's
RoutingConfig.AdditionalVersionWeights), e.g. 90% to 3 and 10% to 4.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pyfaas.model.errors import Conflict, InvalidRequest, NotFound
from pyfaas.model.function import LATEST, FunctionConfig, FunctionRecord

# Lambda's alias name pattern: letters, digits, '-', '_', and not all digits (a version).
ALIAS_PATTERN = re.compile(r"^(?![0-9]+$)[A-Za-z0-9_-]{1,128}$")
VERSION_PATTERN = re.compile(r"^[1-9][0-9]{0,9}$")
MAX_DESCRIPTION = 256
ALIAS_FIELDS = ("version", "additional_version_weights", "description", "provisioned_concurrency")


class VersionNotFound(NotFound):
    """The function has no published version with this number."""

    code = "version_not_found"

    def __init__(self, function: str, version: int | str) -> None:
        super().__init__(
            f"function {function!r} has no version {version}; "
            f"`pyfaas versions {function}` lists the published ones"
        )


class AliasNotFound(NotFound):
    """The function has no alias of this name."""

    code = "alias_not_found"

    def __init__(self, function: str, alias: str) -> None:
        super().__init__(
            f"function {function!r} has no alias {alias!r}; "
            f"`pyfaas alias ls {function}` lists its aliases"
        )


def version_in_use(function: str, version: int, aliases: list[str]) -> Conflict:
    return Conflict(
        f"version {version} of {function!r} is what alias(es) {', '.join(aliases)} point to; "
        "point them elsewhere (`pyfaas alias set`) or delete them first",
        code="version_in_use",
    )


def alias_exists(function: str, alias: str) -> Conflict:
    return Conflict(
        f"function {function!r} already has an alias {alias!r}; update it instead, or "
        "delete it first",
        code="alias_exists",
    )


@dataclass(frozen=True, slots=True)
class PublishedVersion:
    """An immutable snapshot of a function: its code and configuration when published."""

    function: str
    version: int
    config: FunctionConfig
    code_sha256: str
    code_size: int
    layer_sha256: str | None
    description: str
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        """Flat, like a function: the configuration fields, then the version's own."""
        out = self.config.to_dict()
        out.update(
            version=str(self.version),
            description=self.description,
            code_sha256=self.code_sha256,
            code_size=self.code_size,
            layer_sha256=self.layer_sha256,
            created_at=self.created_at,
        )
        return out

    def as_record(self) -> FunctionRecord:
        """The version as a function record: what runs it, and what describes it."""
        return FunctionRecord(
            config=self.config,
            code_sha256=self.code_sha256,
            code_size=self.code_size,
            layer_sha256=self.layer_sha256,
            version=str(self.version),
            created_at=self.created_at,
            updated_at=self.created_at,
        )


@dataclass(frozen=True, slots=True)
class Alias:
    """A name for a version, with an optional second version taking ``additional_weight``
    (0-1, exclusive) of the invocations. ``provisioned_concurrency`` workers are kept ready
    for it, split between its versions by weight."""

    function: str
    name: str
    version: int
    additional_version: int | None = None
    additional_weight: float | None = None
    description: str = ""
    provisioned_concurrency: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0

    def pick(self, draw: float) -> int:
        """The version an invocation runs, for a uniform ``draw`` in [0, 1)."""
        if self.additional_version is not None and draw < (self.additional_weight or 0.0):
            return self.additional_version
        return self.version

    def provisioned_for(self, version: int) -> int:
        """The share of the alias's provisioned concurrency that ``version`` keeps ready."""
        total = self.provisioned_concurrency
        extra = 0
        if self.additional_version is not None:
            extra = round(total * (self.additional_weight or 0.0))
        share = 0
        if version == self.version:
            share += total - extra
        if version == self.additional_version:
            share += extra
        return share

    @property
    def versions(self) -> tuple[int, ...]:
        if self.additional_version is None:
            return (self.version,)
        return (self.version, self.additional_version)

    def to_dict(self) -> dict[str, Any]:
        weights = {}
        if self.additional_version is not None:
            weights[str(self.additional_version)] = self.additional_weight
        return {
            "function": self.function,
            "name": self.name,
            "version": str(self.version),
            "additional_version_weights": weights,
            "description": self.description,
            "provisioned_concurrency": self.provisioned_concurrency,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def split_qualifier(name: str) -> tuple[str, str | None]:
    """``name:qualifier`` -> (name, qualifier); ``$LATEST`` and no qualifier give None."""
    base, sep, qualifier = name.partition(":")
    if not sep or qualifier == LATEST:
        return base, None
    return base, qualifier


def check_qualifier(qualifier: str) -> int | str:
    """A version number (int) or an alias name (str). Raises InvalidRequest otherwise."""
    if VERSION_PATTERN.match(qualifier):
        return int(qualifier)
    if ALIAS_PATTERN.match(qualifier):
        return qualifier
    raise InvalidRequest(
        f"qualifier {qualifier!r} is neither a version number nor an alias name "
        "(1-128 letters, digits, '-', '_', not all digits) nor $LATEST",
        code="invalid_qualifier",
    )


def check_alias_name(name: str) -> str:
    """Raise InvalidRequest (invalid_alias_name) unless ``name`` may name an alias."""
    if not ALIAS_PATTERN.match(name):
        raise InvalidRequest(
            f"alias name {name!r} must be 1-128 letters, digits, '-' or '_', and not all "
            "digits (that would read as a version number)",
            code="invalid_alias_name",
        )
    return name


def parse_version(value: object, what: str = "version") -> int:
    """A published version number from JSON (3 or "3"). Raises InvalidRequest."""
    if isinstance(value, str) and VERSION_PATTERN.match(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    hint = " ($LATEST changes with every deploy: publish it first)" if value == LATEST else ""
    raise InvalidRequest(
        f"{what} must be a published version number (1, 2, ...), got {value!r}{hint}",
        code="invalid_version",
    )


def parse_description(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise InvalidRequest(
            f"description must be a string of at most {MAX_DESCRIPTION} characters",
            code="invalid_description",
        )
    return value


def build_alias(function: str, name: str, fields: dict[str, Any], base: Alias | None) -> Alias:
    """The alias ``fields`` describe (a JSON object), over ``base`` for a partial update.

    Raises InvalidRequest: unknown_field, invalid_version, invalid_routing,
    invalid_description, invalid_concurrency.
    """
    unknown = sorted(set(fields) - set(ALIAS_FIELDS))
    if unknown:
        raise InvalidRequest(
            f"unknown alias field(s): {', '.join(unknown)}; an alias has "
            + ", ".join(ALIAS_FIELDS),
            code="unknown_field",
        )
    if base is None and "version" not in fields:
        raise InvalidRequest(
            'an alias needs the version it points to, e.g. {"version": 3}',
            code="invalid_version",
        )
    version = parse_version(fields["version"]) if "version" in fields else base.version  # type: ignore[union-attr]
    extra, weight = (
        (None, None) if base is None else (base.additional_version, base.additional_weight)
    )
    if "additional_version_weights" in fields:
        extra, weight = _routing(fields["additional_version_weights"], version)
    elif extra == version:
        extra, weight = None, None
    description = base.description if base is not None else ""
    if "description" in fields:
        description = parse_description(fields["description"])
    provisioned = base.provisioned_concurrency if base is not None else 0
    if "provisioned_concurrency" in fields:
        provisioned = fields["provisioned_concurrency"]
        if not isinstance(provisioned, int) or isinstance(provisioned, bool) or provisioned < 0:
            raise InvalidRequest(
                f"provisioned_concurrency must be a whole number 0 or more, got {provisioned!r}",
                code="invalid_concurrency",
            )
    return Alias(
        function=function,
        name=name,
        version=version,
        additional_version=extra,
        additional_weight=weight,
        description=description,
        provisioned_concurrency=provisioned,
        created_at=base.created_at if base is not None else 0.0,
        updated_at=base.updated_at if base is not None else 0.0,
    )


def _routing(value: object, primary: int) -> tuple[int | None, float | None]:
    if value is None or value == {}:
        return None, None
    if not isinstance(value, dict):
        raise _routing_error(f"additional_version_weights must be an object, got {value!r}")
    if len(value) > 1:
        raise _routing_error(
            f"additional_version_weights names {len(value)} versions; an alias routes "
            "between its version and at most one more"
        )
    ((key, weight),) = value.items()
    extra = parse_version(key, "the additional version")
    if extra == primary:
        raise _routing_error(
            f"the additional version {extra} is the alias's own version; name another one"
        )
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < 1:
        raise _routing_error(
            f"the weight of version {extra} must be a number between 0 and 1 (exclusive), "
            f"e.g. 0.1 for 10%; got {weight!r}"
        )
    return extra, float(weight)


def _routing_error(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_routing")
