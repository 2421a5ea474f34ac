"""Which browser origins may use the server: one policy for REST (CORS), static files and the
`/ws` origin check (`BUGSTREAM_ALLOWED_ORIGINS`).

An origin is allowed when it is listed (or the list holds "*"), when it is the server's own,
or, outside production, when its host is this machine (localhost, 127.0.0.1, [::1], any
port): a front end under development on http://localhost:5173 works with no setting.
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: The same local hosts as a regular expression over a whole origin (for CORS middleware).
LOCAL_ORIGIN_PATTERN = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]+)?"


def origin_allowed(
    origin: str | None,
    allowed: tuple[str, ...],
    *,
    allow_local: bool,
    host: str | None = None,
) -> bool:
    """Browsers always send Origin; other clients may not, and are not at risk of CSRF."""
    if origin is None:
        return True
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    if host is not None and parts.netloc.lower() == host.lower():
        return True  # same origin
    return allow_local and (parts.hostname or "").lower() in LOCAL_HOSTS
