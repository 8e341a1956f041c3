"""The archiver's exception tree; every error a user can see is one of these.

    ArchiverError                  base: carries a one-line, user-facing message
    ├── ConfigError                a setting is missing or invalid (names the setting)
    ├── InputError                 a command-line value is invalid (dates, resolution, ...)
    │   └── RefusedStreamNameError a stream name the vendor cannot report
    ├── DatabaseError              the database cannot be reached, migrated or written
    ├── LockError                  another archiver holds the database
    └── ApiError                   (archiver.api.errors) anything the vendor API did
        ├── TransportError         timeouts and connection failures, after retries
        │   └── UnreachableError   no server at the API URL on a run's first request
        ├── ResponseFormatError    a body that cannot be decoded or does not match
        └── ApiStatusError         an HTTP error status, after retries
            ├── BadRequestError    400: carries the vendor's message
            ├── AuthenticationError 401 (403 everywhere): names ARCHIVER_API_TOKEN
            ├── PermissionDeniedError 403 on one endpoint: names it
            ├── RateLimitedError   429
            └── ServerError        5xx

Lower-level exceptions are translated into this tree at one place each: httpx exceptions
and error statuses in `archiver.api.translate`, the vendor's bodies (JSON, pydantic) in
`archiver.api.decode` and the parsers beside it, SQLAlchemy in `archiver.store.db`, settings
in `archiver.config`. Whether an `ApiError` is worth retrying is `archiver.api.retry.retryable`.
Messages never contain the API token.
"""


class ArchiverError(Exception):
    """Base of every error the archiver reports to its user."""


class ConfigError(ArchiverError):
    """A setting is missing or invalid."""


class InputError(ArchiverError):
    """A value given on the command line is invalid."""


class RefusedStreamNameError(InputError):
    """A stream name the vendor cannot report on."""


class DatabaseError(ArchiverError):
    """The database cannot be reached, migrated or written."""


class LockError(ArchiverError):
    """Another archiver instance is active on this database."""
