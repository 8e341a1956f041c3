"""Which endpoints refused the secret with 403: one endpoint's 403 fails only its requests,
an endpoint counts as refusing only while every answer it gave this cycle was 403, and only
every endpoint asked refusing is a refused secret."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from archiver.api.errors import AuthenticationError
from archiver.api.options import TOKEN_SETTING


class Access:
    """The endpoints (paths) asked in a cycle, those that answered 403 and those that answered
    anything else; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asked: set[str] = set()
        self._forbidden: set[str] = set()
        self._allowed: set[str] = set()

    def asked(self, path: str) -> None:
        """`path` was asked (whatever came back)."""
        with self._lock:
            self._asked.add(path)

    def answered(self, path: str, status: int) -> None:
        """`path` answered with HTTP `status`: a 403 refuses, anything else shows the secret
        may read it (one stray 403 from a WAF or a flapping node is not the secret's)."""
        with self._lock:
            self._asked.add(path)
            (self._forbidden if status == 403 else self._allowed).add(path)

    def refused_everywhere(self, planned: Iterable[str] = ()) -> AuthenticationError | None:
        """The refused secret, when every endpoint asked and `planned` answered only 403 so
        far, else None.

        An endpoint that only timed out proves nothing: the secret may still be good there.
        """
        with self._lock:
            refusing = self._forbidden - self._allowed
            everything = self._asked | set(planned)
        if not refusing or everything != refusing:
            return None
        names = ", ".join(sorted(path.removeprefix("/api/") for path in refusing))
        return AuthenticationError(
            f"the vendor refused the API secret on every endpoint asked (403 on {names}): "
            f"check {TOKEN_SETTING}",
            status_code=403,
        )
