"""Errors of the vendor API (the `ApiError` branch of the tree in `archiver.errors`)."""

from __future__ import annotations

from archiver.errors import ArchiverError


class ApiError(ArchiverError):
    """Anything the vendor API did wrong, or that went wrong on the way to it."""


class TransportError(ApiError):
    """Timeouts and connection failures that outlasted every retry."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        # A timeout or a dropped connection is worth another try; a cancelled request or one
        # that outlived the overall deadline is not.
        self.transient = transient


class UnreachableError(TransportError):
    """The first request of a run found no server at the API URL (connection refused, a name
    that does not resolve): not retried within the cycle; a one-shot command ends with it,
    `archiver run` fails the cycle and asks again next cycle."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


class ResponseFormatError(ApiError):
    """A body that does not match what the endpoint documents."""

    def __init__(self, message: str, *, truncated: bool = False) -> None:
        super().__init__(message)
        # A body cut short is worth another try; a body of the wrong shape is not.
        self.truncated = truncated


class GraphQLAnswerError(ApiError):
    """A GraphQL answer carrying `errors` (even with HTTP 200 and partial `data`): the request
    failed and nothing of it is stored; not retried within the cycle (the next cycle asks again)."""


class ApiStatusError(ApiError):
    """An HTTP error status that outlasted every retry."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class BadRequestError(ApiStatusError):
    """400: the vendor rejected a parameter; the message is the vendor's."""


class AuthenticationError(ApiStatusError):
    """401 (or 403 from every endpoint asked): the API secret is wrong, expired or revoked."""


class PermissionDeniedError(ApiStatusError):
    """403 from one endpoint: the secret lacks that endpoint's permission; the others go on."""


class RateLimitedError(ApiStatusError):
    """429 on every attempt."""


class ServerError(ApiStatusError):
    """5xx on every attempt."""


# What ends a cycle at once (`archiver run` stops only for a 401): every other ApiError fails
# only its request.
CYCLE_ENDING: tuple[type[ApiError], ...] = (AuthenticationError, UnreachableError)
