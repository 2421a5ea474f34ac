"""Password hashing with Argon2id (argon2-cffi, its RFC 9106 defaults).

Every function here is CPU-bound and takes tens of milliseconds by design: call them from a
worker thread (`asyncio.to_thread`) in async code, never on the event loop.
"""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["dummy_verify", "hash_password", "needs_rehash", "verify_password"]

# One hasher for the process: it holds only the parameters and is safe to share between threads.
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """Hash `password` with a fresh random salt; the result embeds the parameters and salt."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches `password_hash`.

    False on a mismatch and on a hash that cannot be read (empty, not Argon2, corrupted): a
    broken stored hash must deny the login, not turn it into a server error.
    """
    try:
        return _hasher.verify(password_hash, password)
    # ValueError covers InvalidHashError and the UnicodeError of a non-ASCII hash string.
    except (VerificationError, InvalidHashError, ValueError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when `password_hash` was not made with the current parameters (or cannot be read).

    Call it after a successful `verify_password`, while the clear password is at hand, and store
    `hash_password(password)` when it says so.
    """
    try:
        return _hasher.check_needs_rehash(password_hash)
    except ValueError:  # InvalidHashError is a ValueError
        return True


@cache
def _dummy_hash() -> str:
    # Made lazily with the live parameters, so a dummy check costs exactly what a real one does;
    # a hard-coded hash would drift from them when argon2-cffi's defaults change.
    return _hasher.hash("bugstream-dummy-password")


def dummy_verify(password: str) -> bool:
    """Spend the time of one real verification, then return False.

    Call it when a login names an unknown user, so that "no such user" and "wrong password"
    take the same time and the response time does not reveal which accounts exist.
    """
    verify_password(_dummy_hash(), password)
    return False
