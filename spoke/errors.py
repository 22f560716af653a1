"""Typed errors of the spoke engine.

AWS errors are turned into step outcomes at the boundary (see :mod:`spoke.steps.base`); the errors
here are the few conditions a caller must handle as exceptions because no result makes sense.
"""

from __future__ import annotations

from botocore.exceptions import ClientError


class SpokeError(Exception):
    """Base class of the spoke engine's own errors."""


class InvalidInstanceId(SpokeError, ValueError):
    """The instance id is not an EC2 instance id (``i-`` and 8 or 17 hex digits)."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(f"not an EC2 instance id: {instance_id!r} (expected i- and 8 or 17 hex digits)")
        self.instance_id = instance_id


class PreStateMismatch(SpokeError, ValueError):
    """The pre-state given to isolate/release describes another instance than the plan."""


def error_code(exc: ClientError) -> str:
    """The AWS error code of a botocore ``ClientError`` ('' when the response carries none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))
