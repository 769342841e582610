"""Errors the local org reports to callers, as data.

The domain (engine, auth) raises ApiError with Salesforce's status, errorCode and message;
only the HTTP layer turns it into a response body `[{"errorCode": ..., "message": ...}]`.
"""
from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None):
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> list[dict[str, str]]:
        return [{"errorCode": self.code, "message": self.message}]


def not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def invalid_state(message: str) -> ApiError:
    # Status and code for invalid transitions are our guess (protocol notes: 400
    # INVALIDJOBSTATE is documented only for aborting a finished query job).
    return ApiError(400, "INVALIDJOBSTATE", message)
