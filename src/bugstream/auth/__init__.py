"""Authentication: JWT access tokens (issue and verify) and password hashing.

Depends only on `bugstream.domain`; failures are `bugstream.domain.errors.AuthError`.
"""

from bugstream.auth.passwords import dummy_verify, hash_password, needs_rehash, verify_password
from bugstream.auth.tokens import (
    MAX_TOKEN_LENGTH,
    MIN_SECRET_BYTES,
    SUPPORTED_ALGORITHMS,
    Claims,
    TokenConfig,
    issue_token,
    token_ttl_remaining,
    verify_token,
)

__all__ = [
    "MAX_TOKEN_LENGTH",
    "MIN_SECRET_BYTES",
    "SUPPORTED_ALGORITHMS",
    "Claims",
    "TokenConfig",
    "dummy_verify",
    "hash_password",
    "issue_token",
    "needs_rehash",
    "token_ttl_remaining",
    "verify_password",
    "verify_token",
]
