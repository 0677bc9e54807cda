"""The errors the service answers with: each carries its HTTP status, a code and the parameter at fault.

A base module of ``fedtts.app`` so that the service's parts (outputs, uploads, profiles, jobs) and its
front doors (HTTP API, web UI, Wyoming) raise and translate the same classes.
"""

from __future__ import annotations

__all__ = ["ServiceError", "ServiceBusy", "ServiceTimeout"]


class ServiceError(ValueError):
    """A request the service refuses; ``status`` is the HTTP status the API answers with."""

    def __init__(
        self, message: str, status: int = 400, code: str = "invalid_request", param: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param


class ServiceBusy(ServiceError):
    """All slots busy and the waiting queue full: try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, 503, "server_busy")
        self.retry_after = retry_after


class ServiceTimeout(ServiceError):
    def __init__(self, message: str):
        super().__init__(message, 504, "timeout")
