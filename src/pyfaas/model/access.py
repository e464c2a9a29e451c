"""Access control: API tokens, their scopes and the functions they may reach."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyfaas.model.errors import InvalidRequest
from pyfaas.model.function import NAME_PATTERN

ADMIN = "admin"
DEPLOY = "deploy"
INVOKE = "invoke"
READ = "read"
SCOPES = (ADMIN, DEPLOY, INVOKE, READ)
# What holding a scope grants: admin everything, deploy also reads.
GRANTS: dict[str, frozenset[str]] = {
    ADMIN: frozenset(SCOPES),
    DEPLOY: frozenset({DEPLOY, READ}),
    INVOKE: frozenset({INVOKE}),
    READ: frozenset({READ}),
}
TOKEN_PREFIX = "pyf_"
TOKEN_NAME_MAX = 64


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token as stored (never the token itself: only its SHA-256)."""

    id: str
    name: str
    scopes: tuple[str, ...]
    functions: tuple[str, ...] | None  # None: every function
    created_at: float
    revoked_at: float | None = None

    @property
    def granted(self) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for scope in self.scopes:
            out |= GRANTS[scope]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "functions": None if self.functions is None else list(self.functions),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """What a client asks for when it creates a token; validated by :meth:`parse`."""

    name: str
    scopes: tuple[str, ...]
    functions: tuple[str, ...] | None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> TokenRequest:
        """Raises InvalidRequest (unknown_field, invalid_token_name, invalid_scope,
        invalid_token_functions)."""
        unknown = sorted(set(data) - {"name", "scopes", "functions"})
        if unknown:
            raise InvalidRequest(
                f"unknown field(s): {', '.join(unknown)}; a token has name, scopes, functions",
                code="unknown_field",
            )
        name = data.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= TOKEN_NAME_MAX:
            raise InvalidRequest(
                f"name must be a label of 1-{TOKEN_NAME_MAX} characters saying who holds "
                "the token (e.g. 'ci')",
                code="invalid_token_name",
            )
        scopes = data.get("scopes")
        if (
            not isinstance(scopes, list)
            or not scopes
            or not all(isinstance(s, str) and s in SCOPES for s in scopes)
        ):
            raise InvalidRequest(
                f"scopes must be a non-empty list of {', '.join(SCOPES)}; got {scopes!r}",
                code="invalid_scope",
            )
        functions = data.get("functions")
        if functions is not None:
            if (
                not isinstance(functions, list)
                or not functions
                or not all(isinstance(f, str) and NAME_PATTERN.match(f) for f in functions)
            ):
                raise InvalidRequest(
                    "functions must be null (every function) or a non-empty list of function names",
                    code="invalid_token_functions",
                )
            if ADMIN in scopes:
                raise InvalidRequest(
                    "an admin token reaches tokens and secrets, which belong to no function: "
                    "it cannot be limited to functions",
                    code="invalid_token_functions",
                )
        return cls(
            name=name,
            scopes=tuple(sorted(set(scopes), key=SCOPES.index)),
            functions=None if functions is None else tuple(sorted(set(functions))),
        )
