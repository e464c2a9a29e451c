"""Canary rollouts: an alias sends a share of its traffic to a new version while the server
watches that version's error rate over a window, then rolls back (rate above the
threshold), or keeps the split (window passed), or promotes the new version to 100%."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pyfaas.model.errors import Conflict, InvalidRequest, NotFound
from pyfaas.model.versions import parse_version

WATCHING = "watching"
ROLLED_BACK = "rolled_back"  # the new version failed too often: the alias is back on the old
PASSED = "passed"  # the window ended within the threshold: the split stays
PROMOTED = "promoted"  # passed, and the alias now sends everything to the new version
STOPPED = "stopped"  # someone changed the alias meanwhile: the rollout left it alone
STATES = (WATCHING, ROLLED_BACK, PASSED, PROMOTED, STOPPED)

ROLLOUT_FIELDS = ("version", "weight", "window_s", "error_threshold", "promote")
MIN_WINDOW_S = 1.0
MAX_WINDOW_S = 86_400.0
DEFAULT_WINDOW_S = 60.0
DEFAULT_ERROR_THRESHOLD = 0.05


class RolloutNotFound(NotFound):
    """The alias has never had a rollout."""

    code = "rollout_not_found"

    def __init__(self, function: str, alias: str) -> None:
        super().__init__(
            f"alias {function}:{alias} has no rollout; `pyfaas deploy ... --publish --alias "
            f"{alias} --canary 10% --auto-rollback` starts one"
        )


def rollout_in_progress(function: str, alias: str, version: int) -> Conflict:
    return Conflict(
        f"alias {function}:{alias} is already rolling out version {version}; wait for it "
        f"to finish (`pyfaas alias rollout {function} {alias}`) or set the alias by hand",
        code="rollout_in_progress",
    )


@dataclass(frozen=True, slots=True)
class RolloutRequest:
    """A checked request to start a rollout: ``weight`` of ``alias``'s traffic to
    ``version`` for ``window_s`` seconds; roll back when more than ``error_threshold`` of
    the new version's invocations fail."""

    version: int
    weight: float
    window_s: float
    error_threshold: float
    promote: bool

    @classmethod
    def parse(cls, fields: dict[str, Any]) -> RolloutRequest:
        """Raises InvalidRequest (unknown_field, invalid_version, invalid_routing,
        invalid_rollout) naming the field."""
        unknown = sorted(set(fields) - set(ROLLOUT_FIELDS))
        if unknown:
            raise InvalidRequest(
                f"unknown field(s): {', '.join(unknown)}; a rollout takes "
                f"{', '.join(ROLLOUT_FIELDS)}",
                code="unknown_field",
            )
        if "version" not in fields:
            raise InvalidRequest(
                "version is required: the published version to roll out", code="invalid_version"
            )
        weight = _number(fields.get("weight"), "weight", "invalid_routing")
        if not 0 < weight < 1:
            raise InvalidRequest(
                f"weight is the new version's share, between 0 and 1 (exclusive), got {weight}",
                code="invalid_routing",
            )
        window = _number(fields.get("window_s", DEFAULT_WINDOW_S), "window_s", "invalid_rollout")
        if not MIN_WINDOW_S <= window <= MAX_WINDOW_S:
            raise InvalidRequest(
                f"window_s must be {MIN_WINDOW_S:g}-{MAX_WINDOW_S:g} seconds, got {window}",
                code="invalid_rollout",
            )
        threshold = _number(
            fields.get("error_threshold", DEFAULT_ERROR_THRESHOLD),
            "error_threshold",
            "invalid_rollout",
        )
        if not 0 <= threshold < 1:
            raise InvalidRequest(
                f"error_threshold is a share of failed invocations, 0 or more and below 1, "
                f"got {threshold}",
                code="invalid_rollout",
            )
        promote = fields.get("promote", False)
        if not isinstance(promote, bool):
            raise InvalidRequest("promote must be true or false", code="invalid_rollout")
        return cls(parse_version(fields["version"]), weight, window, threshold, promote)


def _number(value: object, name: str, code: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(f"{name} must be a number, got {value!r}", code=code)
    return float(value)


@dataclass(frozen=True, slots=True)
class Rollout:
    """One alias's latest rollout: from ``previous_version`` to ``version``, as it stands."""

    function: str
    alias: str
    previous_version: int
    version: int
    weight: float
    window_s: float
    error_threshold: float
    promote: bool
    state: str
    started_at: float
    ends_at: float
    finished_at: float | None = None
    invocations: int = 0  # of the new version since the start
    errors: int = 0  # errors, timeouts and crashes among them
    message: str = ""

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.invocations if self.invocations else None

    @property
    def crossed(self) -> bool:
        """The new version failed more often than the threshold allows."""
        rate = self.error_rate
        return rate is not None and rate > self.error_threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "alias": self.alias,
            "previous_version": str(self.previous_version),
            "version": str(self.version),
            "weight": self.weight,
            "window_s": self.window_s,
            "error_threshold": self.error_threshold,
            "promote": self.promote,
            "state": self.state,
            "started_at": self.started_at,
            "ends_at": self.ends_at,
            "finished_at": self.finished_at,
            "invocations": self.invocations,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "message": self.message,
        }
