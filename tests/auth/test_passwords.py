"""Password hashing: Argon2id, salted, failures are False and never exceptions."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from bugstream.auth import dummy_verify, hash_password, needs_rehash, verify_password
from bugstream.auth.passwords import _dummy_hash


def test_hash_then_verify() -> None:
    password_hash = hash_password("correct horse battery staple")

    assert password_hash.startswith("$argon2id$")
    assert "correct horse" not in password_hash
    assert verify_password(password_hash, "correct horse battery staple") is True


def test_wrong_password_is_false() -> None:
    password_hash = hash_password("correct horse battery staple")

    assert verify_password(password_hash, "Correct horse battery staple") is False
    assert verify_password(password_hash, "") is False


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "not-a-hash",
        "$2b$12$abcdefghijklmnopqrstuuFq2n3y0Y1yB9zq4Qy2o6w4u1tR3bWZy",  # bcrypt
        "$argon2id$v=19$m=65536,t=3,p=4$bm90LWJhc2U2NA$",
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$!!!",
        "$argon2id$\u00e9t\u00e9",  # not ASCII
    ],
)
def test_malformed_hash_is_false_not_an_error(malformed: str) -> None:
    assert verify_password(malformed, "anything") is False
    assert needs_rehash(malformed) is True


def test_hashes_are_salted() -> None:
    first = hash_password("same password")
    second = hash_password("same password")

    assert first != second
    assert verify_password(first, "same password")
    assert verify_password(second, "same password")


def test_needs_rehash_when_parameters_change() -> None:
    weaker = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw")

    assert needs_rehash(hash_password("pw")) is False
    assert needs_rehash(weaker) is True
    # An old hash still verifies, so the login can succeed and then rehash.
    assert verify_password(weaker, "pw") is True


def test_dummy_verify_is_false_and_costs_a_real_verification() -> None:
    assert dummy_verify("whatever") is False
    assert dummy_verify("bugstream-dummy-password") is False
    # Same parameters as real hashes, hence the same verification time.
    assert needs_rehash(_dummy_hash()) is False
