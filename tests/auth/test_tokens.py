"""JWT issue and verification, including the classic attacks (alg none, algorithm confusion)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bugstream.auth import Claims, TokenConfig, issue_token, token_ttl_remaining, verify_token
from bugstream.domain.errors import AuthError, ErrorCode

SECRET = "test-secret-0123456789abcdef0123456789abcdef"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
T0 = int(NOW.timestamp())
ISSUER = "https://idp.example.com/"
AUDIENCE = "bugstream"


# --- helpers -------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(obj: dict[str, Any]) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def _hand_made(
    header: dict[str, Any], payload: dict[str, Any] | str, hmac_key: bytes | None
) -> str:
    """A token built without PyJWT, which refuses to make the tokens these tests need.

    `payload` is a dict, or raw JSON text; `hmac_key=None` leaves the signature empty.
    """
    body = _b64(payload.encode()) if isinstance(payload, str) else _segment(payload)
    signing_input = f"{_segment(header)}.{body}"
    if hmac_key is None:
        return f"{signing_input}."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _claims(**overrides: Any) -> dict[str, Any]:
    """A valid payload at NOW; `name=None` removes a claim."""
    claims: dict[str, Any] = {"sub": "42", "role": "developer", "iat": T0, "exp": T0 + 600}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _hs256(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def _rejects(
    config: TokenConfig,
    token: str,
    reason: str,
    *,
    now: datetime = NOW,
    code: ErrorCode = ErrorCode.INVALID_TOKEN,
) -> None:
    with pytest.raises(AuthError) as caught:
        verify_token(config, token, now=now)
    assert caught.value.code == code
    assert reason in caught.value.message
    if len(token) > 3:
        # The message names the reason and never carries the token or a part of it.
        assert token not in caught.value.message
        for part in token.split("."):
            assert len(part) < 8 or part not in caught.value.message


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def hs_config() -> TokenConfig:
    return TokenConfig(secret=SECRET)


# --- round trip ----------------------------------------------------------------------------


def test_round_trip() -> None:
    config = TokenConfig(secret=SECRET, issuer=ISSUER, audience=AUDIENCE)

    token = issue_token(config, user_id=42, role="developer", now=NOW)
    claims = verify_token(config, token, now=NOW + timedelta(seconds=5))

    assert claims.user_id == 42
    assert claims.role == "developer"
    assert claims.issued_at == NOW
    assert claims.expires_at == NOW + timedelta(seconds=3600)
    assert claims.expires_at.tzinfo is not None
    assert claims.jti is not None and len(claims.jti) == 32
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["sub"] == "42"
    assert payload["iss"] == ISSUER and payload["aud"] == AUDIENCE
    assert payload["nbf"] == payload["iat"] == T0
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_issue_ttl_defaults_to_config_and_can_be_overridden() -> None:
    config = TokenConfig(secret=SECRET, access_ttl_seconds=120)

    default = verify_token(config, issue_token(config, user_id=1, role="viewer", now=NOW), now=NOW)
    short = verify_token(
        config, issue_token(config, user_id=1, role="viewer", ttl_seconds=30, now=NOW), now=NOW
    )

    assert default.expires_at == NOW + timedelta(seconds=120)
    assert short.expires_at == NOW + timedelta(seconds=30)


def test_each_token_has_its_own_jti(hs_config: TokenConfig) -> None:
    first = verify_token(
        hs_config, issue_token(hs_config, user_id=1, role="admin", now=NOW), now=NOW
    )
    second = verify_token(
        hs_config, issue_token(hs_config, user_id=1, role="admin", now=NOW), now=NOW
    )
    assert first.jti != second.jti


def test_verify_without_now_uses_the_clock(hs_config: TokenConfig) -> None:
    assert verify_token(hs_config, issue_token(hs_config, user_id=7, role="admin")).user_id == 7
    stale = issue_token(hs_config, user_id=7, role="admin", now=datetime(2001, 1, 1, tzinfo=UTC))
    with pytest.raises(AuthError) as caught:
        verify_token(hs_config, stale)
    assert caught.value.code == ErrorCode.TOKEN_EXPIRED


def test_token_ttl_remaining() -> None:
    claims = Claims(user_id=1, role=None, expires_at=NOW, issued_at=None, jti=None)

    assert token_ttl_remaining(claims, NOW - timedelta(seconds=90.5)) == 90.5
    assert token_ttl_remaining(claims, NOW) == 0.0
    assert token_ttl_remaining(claims, NOW + timedelta(hours=1)) == 0.0


# --- time ----------------------------------------------------------------------------------


def test_expired_token_is_token_expired(hs_config: TokenConfig) -> None:
    token = issue_token(hs_config, user_id=42, role="developer", ttl_seconds=60, now=NOW)

    assert verify_token(hs_config, token, now=NOW + timedelta(seconds=59)).user_id == 42
    # Dead at its `exp` second exactly, as in PyJWT.
    _rejects(
        hs_config, token, "expired", now=NOW + timedelta(seconds=60), code=ErrorCode.TOKEN_EXPIRED
    )


def test_not_yet_valid_is_invalid_token(hs_config: TokenConfig) -> None:
    token = _hs256(_claims(nbf=T0 + 300))

    _rejects(hs_config, token, "token is not valid yet")
    assert verify_token(hs_config, token, now=NOW + timedelta(seconds=300)).user_id == 42


def test_issued_in_the_future_is_invalid_token(hs_config: TokenConfig) -> None:
    _rejects(hs_config, _hs256(_claims(iat=T0 + 300)), "issued in the future")


def test_leeway_is_honoured() -> None:
    config = TokenConfig(secret=SECRET, leeway_seconds=30)
    token = _hs256(_claims(exp=T0, nbf=T0 + 20))

    # 20 s before nbf and 20 s after exp: both inside the 30 s leeway.
    assert verify_token(config, token, now=NOW + timedelta(seconds=20)).user_id == 42
    assert verify_token(config, token, now=NOW - timedelta(seconds=10)).user_id == 42
    _rejects(
        config, token, "expired", now=NOW + timedelta(seconds=31), code=ErrorCode.TOKEN_EXPIRED
    )
    _rejects(config, _hs256(_claims(nbf=T0 + 31)), "not valid yet")
    # Without leeway the same moments are refused.
    no_leeway = TokenConfig(secret=SECRET)
    _rejects(no_leeway, _hs256(_claims(exp=T0)), "expired", code=ErrorCode.TOKEN_EXPIRED)
    _rejects(no_leeway, _hs256(_claims(nbf=T0 + 20)), "not valid yet")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": "tomorrow"}, "'exp' is not a valid time"),
        ({"exp": True}, "'exp' is not a valid time"),
        ({"exp": 10**400}, "'exp' is not a valid time"),
        ({"exp": 10**30}, "'exp' is out of range"),
        ({"iat": [T0]}, "'iat' is not a valid time"),
        ({"nbf": "now"}, "'nbf' is not a valid time"),
    ],
)
def test_bad_time_claims_are_invalid(
    hs_config: TokenConfig, overrides: dict[str, Any], reason: str
) -> None:
    _rejects(hs_config, _hs256(_claims(**overrides)), reason)


def test_infinite_exp_is_invalid(hs_config: TokenConfig) -> None:
    # JSON has no Infinity, but Python's json module reads one: a token could carry it.
    raw = json.dumps(_claims(exp=0)).replace('"exp": 0', '"exp": Infinity')
    token = _hand_made({"alg": "HS256", "typ": "JWT"}, raw, SECRET.encode())
    _rejects(hs_config, token, "'exp' is not a valid time")


def test_naive_now_is_a_programming_error(hs_config: TokenConfig) -> None:
    token = issue_token(hs_config, user_id=1, role="admin", now=NOW)
    naive = datetime(2030, 1, 1, 12, 0)  # no tzinfo: the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_token(hs_config, token, now=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        issue_token(hs_config, user_id=1, role="admin", now=naive)


# --- signature, issuer, audience, required claims ------------------------------------------


def test_wrong_signature(hs_config: TokenConfig) -> None:
    _rejects(
        hs_config, _hs256(_claims(), secret="another-secret-0123456789abcdef-xyz"), "signature"
    )

    header, _, signature = _hs256(_claims()).split(".")
    tampered = f"{header}.{_segment(_claims(sub='1'))}.{signature}"
    _rejects(hs_config, tampered, "token signature is invalid")


def test_wrong_issuer() -> None:
    config = TokenConfig(secret=SECRET, issuer=ISSUER)

    _rejects(config, _hs256(_claims(iss="https://evil.example.com/")), "issuer is not accepted")
    _rejects(config, _hs256(_claims()), "missing the 'iss' claim")
    assert verify_token(config, _hs256(_claims(iss=ISSUER)), now=NOW).user_id == 42


def test_wrong_audience() -> None:
    config = TokenConfig(secret=SECRET, audience=AUDIENCE)

    _rejects(config, _hs256(_claims(aud="another-service")), "audience is not accepted")
    _rejects(config, _hs256(_claims()), "missing the 'aud' claim")
    assert verify_token(config, _hs256(_claims(aud=[AUDIENCE, "x"])), now=NOW).user_id == 42
    # A token meant for some audience is not for us when we do not name ours.
    _rejects(TokenConfig(secret=SECRET), _hs256(_claims(aud=AUDIENCE)), "audience")


@pytest.mark.parametrize("claim", ["exp", "iat", "sub"])
def test_missing_required_claim(hs_config: TokenConfig, claim: str) -> None:
    _rejects(hs_config, _hs256(_claims(**{claim: None})), f"missing the '{claim}' claim")


@pytest.mark.parametrize(
    "sub", ["abc", "12a", "007", "0", "-1", "+7", " 7", "1.5", "1_000", "\u0661"]
)
def test_sub_must_be_a_user_id(hs_config: TokenConfig, sub: str) -> None:
    _rejects(hs_config, _hs256(_claims(sub=sub)), "subject is not a user id")


def test_sub_must_be_a_string(hs_config: TokenConfig) -> None:
    _rejects(hs_config, _hs256(_claims(sub=42)), "subject is not a user id")
    _rejects(hs_config, _hs256(_claims(sub=str(2**63))), "subject is not a user id")


def test_role_and_jti_must_be_strings(hs_config: TokenConfig) -> None:
    _rejects(hs_config, _hs256(_claims(role=["admin"])), "'role' is not a string")
    _rejects(hs_config, _hs256(_claims(jti=5)), "'jti' is not a string")


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "e30.e30.", "x" * 20_000])
def test_malformed_tokens(hs_config: TokenConfig, token: str) -> None:
    with pytest.raises(AuthError) as caught:
        verify_token(hs_config, token, now=NOW)
    assert caught.value.code == ErrorCode.INVALID_TOKEN
    assert "x" * 20 not in caught.value.message


# --- algorithm attacks ---------------------------------------------------------------------


def test_hand_made_hs256_helper_is_sound(hs_config: TokenConfig) -> None:
    # Guards the attack tests below: the same construction with the right key is accepted.
    token = _hand_made({"alg": "HS256", "typ": "JWT"}, _claims(), SECRET.encode())
    assert verify_token(hs_config, token, now=NOW).user_id == 42


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_rejected(hs_config: TokenConfig, alg: str) -> None:
    token = _hand_made({"alg": alg, "typ": "JWT"}, _claims(role="admin"), None)
    _rejects(hs_config, token, f"token algorithm '{alg}' is not accepted")


def test_alg_missing_or_odd_is_rejected(hs_config: TokenConfig) -> None:
    _rejects(hs_config, _hand_made({"typ": "JWT"}, _claims(), None), "names no algorithm")
    odd = _hand_made({"alg": "<script>" * 10}, _claims(), None)
    _rejects(hs_config, odd, "token algorithm is not accepted")
    with pytest.raises(AuthError) as caught:
        verify_token(hs_config, odd, now=NOW)
    assert "<script>" not in caught.value.message


def test_algorithm_not_in_allow_list_is_rejected(
    hs_config: TokenConfig, rsa_key: rsa.RSAPrivateKey
) -> None:
    _rejects(
        hs_config, jwt.encode(_claims(), rsa_key, algorithm="RS256"), "'RS256' is not accepted"
    )
    _rejects(hs_config, jwt.encode(_claims(), SECRET * 2, algorithm="HS512"), "'HS512'")


@pytest.mark.parametrize(
    ("algorithms", "reason"),
    [
        (("RS256", "HS256"), "token signature is invalid"),
        (("RS256",), "token algorithm 'HS256' is not accepted"),
    ],
)
def test_hs256_signed_with_the_public_key_is_rejected(
    rsa_key: rsa.RSAPrivateKey, algorithms: tuple[str, ...], reason: str
) -> None:
    public_pem = _pem(rsa_key)
    secret = SECRET if "HS256" in algorithms else None
    config = TokenConfig(secret=secret, public_key=public_pem, algorithms=algorithms)
    # The attacker knows the public key and uses its PEM text as the HMAC secret.
    forged = _hand_made(
        {"alg": "HS256", "typ": "JWT"}, _claims(sub="1", role="admin"), public_pem.encode()
    )

    _rejects(config, forged, reason)
    # The same config accepts the provider's genuine RS256 token.
    genuine = jwt.encode(_claims(), rsa_key, algorithm="RS256")
    assert verify_token(config, genuine, now=NOW).user_id == 42


# --- external identity provider ------------------------------------------------------------


def test_rs256_token_from_identity_provider(rsa_key: rsa.RSAPrivateKey) -> None:
    config = TokenConfig(
        public_key=_pem(rsa_key), algorithms=("RS256",), issuer=ISSUER, audience=AUDIENCE
    )
    token = jwt.encode(
        _claims(sub="1001", role=None, iss=ISSUER, aud=AUDIENCE, jti="idp-1"),
        rsa_key,
        algorithm="RS256",
        headers={"kid": "key-1"},
    )

    claims = verify_token(config, token, now=NOW)

    assert claims == Claims(
        user_id=1001,
        role=None,
        expires_at=NOW + timedelta(seconds=600),
        issued_at=NOW,
        jti="idp-1",
    )


def test_rs256_token_signed_by_another_key_is_rejected(rsa_key: rsa.RSAPrivateKey) -> None:
    config = TokenConfig(public_key=_pem(rsa_key), algorithms=("RS256",))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    _rejects(config, jwt.encode(_claims(), other, algorithm="RS256"), "token signature is invalid")


def test_es256_token_from_identity_provider(ec_key: ec.EllipticCurvePrivateKey) -> None:
    config = TokenConfig(public_key=_pem(ec_key), algorithms=("ES256",))

    claims = verify_token(config, jwt.encode(_claims(), ec_key, algorithm="ES256"), now=NOW)

    assert claims.user_id == 42 and claims.role == "developer"
    other = ec.generate_private_key(ec.SECP256R1())
    _rejects(config, jwt.encode(_claims(), other, algorithm="ES256"), "signature is invalid")


def test_own_and_provider_tokens_side_by_side(rsa_key: rsa.RSAPrivateKey) -> None:
    config = TokenConfig(secret=SECRET, public_key=_pem(rsa_key), algorithms=("HS256", "RS256"))

    own = issue_token(config, user_id=5, role="manager", now=NOW)
    provider = jwt.encode(_claims(sub="6"), rsa_key, algorithm="RS256")

    assert verify_token(config, own, now=NOW).user_id == 5
    assert verify_token(config, provider, now=NOW).user_id == 6


# --- configuration -------------------------------------------------------------------------


def _rsa_pem(bits: int) -> str:
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=bits))


def _ec_pem() -> str:
    return _pem(ec.generate_private_key(ec.SECP256R1()))


def _private_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: TokenConfig(), "HS256 needs a secret"),
        (lambda: TokenConfig(secret=""), "HS256 needs a secret"),
        (lambda: TokenConfig(secret="short"), "at least 32 bytes"),
        (lambda: TokenConfig(secret=_ec_pem()), "looks like a PEM key"),
        (lambda: TokenConfig(secret=SECRET, algorithms=()), "non-empty tuple"),
        (lambda: TokenConfig(secret=SECRET, algorithms="HS256"), "non-empty tuple"),  # type: ignore[arg-type]
        (lambda: TokenConfig(secret=SECRET, algorithms=["HS256"]), "non-empty tuple"),  # type: ignore[arg-type]
        (lambda: TokenConfig(secret=SECRET, algorithms=("none",)), "unsupported"),
        (lambda: TokenConfig(secret=SECRET, algorithms=("HS512",)), "unsupported"),
        (lambda: TokenConfig(algorithms=("RS256",)), "needs public_key"),
        (lambda: TokenConfig(public_key="not a key", algorithms=("RS256",)), "PEM public key"),
        (lambda: TokenConfig(public_key=_private_pem(), algorithms=("ES256",)), "PEM public key"),
        (lambda: TokenConfig(public_key=_ec_pem(), algorithms=("RS256",)), "RSA public key"),
        (lambda: TokenConfig(public_key=_rsa_pem(1024), algorithms=("RS256",)), "2048 bits"),
        (lambda: TokenConfig(public_key=_rsa_pem(2048), algorithms=("ES256",)), "P-256"),
        (
            lambda: TokenConfig(public_key=_ec_pem(), algorithms=("RS256", "ES256")),
            "cannot share one public key",
        ),
        (lambda: TokenConfig(secret=SECRET, issuer=""), "issuer"),
        (lambda: TokenConfig(secret=SECRET, audience=""), "audience"),
        (lambda: TokenConfig(secret=SECRET, access_ttl_seconds=0), "access_ttl_seconds"),
        (lambda: TokenConfig(secret=SECRET, leeway_seconds=-1), "leeway_seconds"),
    ],
)
def test_token_config_validation(make: Callable[[], TokenConfig], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_token_config_keeps_the_secret_out_of_repr() -> None:
    assert SECRET not in repr(TokenConfig(secret=SECRET))


def test_issue_token_refuses_what_it_cannot_issue(rsa_key: rsa.RSAPrivateKey) -> None:
    provider_only = TokenConfig(public_key=_pem(rsa_key), algorithms=("RS256",))
    with pytest.raises(ValueError, match="needs a secret"):
        issue_token(provider_only, user_id=1, role="admin", now=NOW)

    config = TokenConfig(secret=SECRET)
    with pytest.raises(ValueError, match="unknown role"):
        issue_token(config, user_id=1, role="superuser", now=NOW)
    for user_id in (0, -1, True, 2**63):
        with pytest.raises(ValueError, match="user_id"):
            issue_token(config, user_id=user_id, role="admin", now=NOW)
    with pytest.raises(ValueError, match="ttl_seconds"):
        issue_token(config, user_id=1, role="admin", ttl_seconds=0, now=NOW)


# --- the verified-token cache --------------------------------------------------------------


def test_a_remembered_token_is_still_refused_once_expired(hs_config: TokenConfig) -> None:
    token = issue_token(hs_config, user_id=42, role="developer", ttl_seconds=60, now=NOW)
    for _ in range(3):  # the first verification decodes, the others come from the cache
        assert verify_token(hs_config, token, now=NOW + timedelta(seconds=30)).user_id == 42
    _rejects(
        hs_config, token, "expired", now=NOW + timedelta(seconds=61), code=ErrorCode.TOKEN_EXPIRED
    )


def test_a_token_accepted_under_one_configuration_is_not_accepted_under_another() -> None:
    ours = TokenConfig(secret=SECRET)
    other = TokenConfig(secret="another-secret-0123456789abcdef0123456789")
    token = issue_token(ours, user_id=42, role="developer", now=NOW)
    assert verify_token(ours, token, now=NOW).user_id == 42
    _rejects(other, token, "signature", now=NOW)


def test_the_cache_stays_bounded(hs_config: TokenConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    from bugstream.auth import tokens

    monkeypatch.setattr(tokens, "VERIFIED_CACHE_SIZE", 5)
    issued = [issue_token(hs_config, user_id=i, role="developer", now=NOW) for i in range(1, 9)]
    for token in issued:
        verify_token(hs_config, token, now=NOW)
    assert len(hs_config._verified) == 5
    assert list(hs_config._verified) == issued[-5:]  # the oldest made room
    assert verify_token(hs_config, issued[0], now=NOW).user_id == 1  # still verifiable
