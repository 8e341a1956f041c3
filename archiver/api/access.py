"""Which endpoints refused the secret with 403: one endpoint's 403 fails only its requests,
a 403 from every endpoint a cycle asked is a refused secret."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from archiver.api.errors import AuthenticationError
from archiver.config import TOKEN_SETTING


class Access:
    """The endpoints (paths) asked in a cycle and those that answered 403; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asked: set[str] = set()
        self._forbidden: set[str] = set()

    def asked(self, path: str) -> None:
        """`path` was asked (whatever came back)."""
        with self._lock:
            self._asked.add(path)

    def forbid(self, path: str) -> None:
        """`path` answered 403."""
        with self._lock:
            self._asked.add(path)
            self._forbidden.add(path)

    def refused_everywhere(self, planned: Iterable[str] = ()) -> AuthenticationError | None:
        """The refused secret, when every endpoint asked and `planned` answered 403, else None.

        An endpoint that only timed out proves nothing: the secret may still be good there.
        """
        with self._lock:
            forbidden = set(self._forbidden)
            everything = self._asked | set(planned)
        if not forbidden or everything != forbidden:
            return None
        names = ", ".join(sorted(path.removeprefix("/api/") for path in forbidden))
        return AuthenticationError(
            f"the vendor refused the API secret on every endpoint asked (403 on {names}): "
            f"check {TOKEN_SETTING}",
            status_code=403,
        )
