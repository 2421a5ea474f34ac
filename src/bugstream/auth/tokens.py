"""JSON Web Tokens: issue bugstream's own (HS256), verify ours and an identity provider's.

bugstream signs its access tokens with a shared secret (HS256). It can also accept tokens signed
by an external identity provider (RS256 or ES256), checked with that provider's public key.

What `verify_token` guarantees about a token it accepts:

- its `alg` is in `TokenConfig.algorithms` (so never `none`), and its signature was checked with
  the key of that algorithm's family only: an HS256 token is checked with the shared secret, never
  with the public key, which defeats the HS256/RS256 algorithm-confusion forgery;
- it has `exp`, `iat` and `sub`; `sub` is a bugstream user id (a positive decimal integer);
- `exp`, `nbf` (when present) and `iat` hold at `now`, give or take `leeway_seconds`;
- `iss` and `aud` match the configuration when it names them, and a token with an `aud` is
  refused when the configuration names none (RFC 7519 4.1.3: the audience must identify us).

Every refusal is an `AuthError`: `token_expired` for an expired token, `invalid_token` otherwise,
with a message that names the reason and never contains the token.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.types import Options

from bugstream.domain.enums import Role
from bugstream.domain.errors import AuthError, ErrorCode

__all__ = [
    "MAX_TOKEN_LENGTH",
    "MIN_SECRET_BYTES",
    "SUPPORTED_ALGORITHMS",
    "Claims",
    "TokenConfig",
    "issue_token",
    "token_ttl_remaining",
    "verify_token",
]

#: The only algorithms a `TokenConfig` may allow.
SUPPORTED_ALGORITHMS: Final = frozenset({"HS256", "RS256", "ES256"})
#: RFC 7518 3.2: an HS256 key must be at least as long as the hash output (256 bits).
MIN_SECRET_BYTES: Final = 32
#: RFC 7518 3.3: RS256 keys must be 2048 bits or larger.
MIN_RSA_KEY_BITS: Final = 2048
#: Longer strings are refused before any parsing; real tokens, even an IdP's, are far smaller.
MAX_TOKEN_LENGTH: Final = 16_384
#: Verified tokens remembered per configuration (about 1 KiB each).
VERIFIED_CACHE_SIZE: Final = 10_000

# ASCII digits only, no sign, no leading zero, no `_`: `int()` alone would accept " 7", "+7",
# "0_7" and non-ASCII digits, and one user id must have exactly one spelling.
_USER_ID: Final = re.compile(r"[1-9][0-9]{0,18}")
_MAX_USER_ID: Final = 2**63 - 1  # ids are BIGINT in the store
_SAFE_ALG: Final = re.compile(r"[A-Za-z0-9]{1,16}")

# PyJWT checks the signature, the presence of the required claims, `iss` and `aud`. The times
# are checked here against the caller's `now`, as PyJWT only knows the wall clock; `sub` and
# `jti` here too, for one set of messages whatever PyJWT version (its checks came in 2.10).
_DECODE_OPTIONS: Final[Options] = {
    "require": ["exp", "iat", "sub"],
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_sub": False,
    "verify_jti": False,
}

_PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class TokenConfig:
    """How tokens are issued and which are accepted. Invalid combinations raise `ValueError`.

    `secret` is required when `algorithms` allows HS256 (at least `MIN_SECRET_BYTES` bytes);
    `public_key` (PEM, RSA >= 2048 bits or EC P-256) when it allows RS256 or ES256. One public
    key serves one algorithm, so RS256 and ES256 cannot both be allowed.
    """

    secret: str | None = field(default=None, repr=False)  # repr=False: keep it out of logs
    public_key: str | None = None
    algorithms: tuple[str, ...] = ("HS256",)
    issuer: str | None = None
    audience: str | None = None
    access_ttl_seconds: int = 3600
    leeway_seconds: int = 0
    # The parsed `public_key`, made once here rather than on every verification.
    _verifying_key: _PublicKey | None = field(default=None, init=False, repr=False, compare=False)
    # Payloads of tokens whose signature, algorithm, issuer and audience checked out, by
    # token: a client presents the same token on every request, and PyJWT's decode costs
    # more than the rest of an authenticated request. The times are checked on every use.
    _verified: dict[str, dict[str, Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.algorithms, tuple) or not self.algorithms:
            raise ValueError('algorithms must be a non-empty tuple, e.g. ("HS256",)')
        unknown = sorted({str(a) for a in self.algorithms} - SUPPORTED_ALGORITHMS)
        if unknown:
            raise ValueError(
                f"unsupported JWT algorithm(s) {unknown}; allowed: {sorted(SUPPORTED_ALGORITHMS)}"
            )
        if "HS256" in self.algorithms:
            _check_secret(self.secret)
        asymmetric = sorted(set(self.algorithms) - {"HS256"})
        if len(asymmetric) > 1:
            raise ValueError("RS256 and ES256 cannot share one public key; allow only one of them")
        if asymmetric:
            if not self.public_key:
                raise ValueError(f"{asymmetric[0]} needs public_key (the provider's PEM key)")
            key = _load_public_key(self.public_key, asymmetric[0])
            object.__setattr__(self, "_verifying_key", key)
        for name in ("issuer", "audience"):
            if getattr(self, name) == "":
                raise ValueError(f"{name} must be None or a non-empty string")
        if not _is_int(self.access_ttl_seconds) or self.access_ttl_seconds <= 0:
            raise ValueError("access_ttl_seconds must be a positive integer")
        if not _is_int(self.leeway_seconds) or self.leeway_seconds < 0:
            raise ValueError("leeway_seconds must be a non-negative integer")


@dataclass(frozen=True)
class Claims:
    """What an accepted token says. `role` is the raw claim, unchecked: an IdP may use others."""

    user_id: int
    role: str | None
    expires_at: datetime  # UTC, aware
    issued_at: datetime | None  # UTC, aware
    jti: str | None


def issue_token(
    config: TokenConfig,
    *,
    user_id: int,
    role: str,
    ttl_seconds: int | None = None,
    now: datetime | None = None,
) -> str:
    """An HS256 access token for `user_id`, valid from `now` for `ttl_seconds`.

    Claims: `sub` (the id as a string), `role`, `iat`, `nbf`, `exp`, a random `jti`, and
    `iss`/`aud` when configured. `ttl_seconds` defaults to `config.access_ttl_seconds`; `now`
    (timezone-aware) defaults to the current time. Raises `ValueError` when the configuration
    cannot issue (no secret, or HS256 not allowed), or for an unknown role, a user id that is
    not a positive integer, or a non-positive TTL.
    """
    if config.secret is None or "HS256" not in config.algorithms:
        raise ValueError("cannot issue tokens: TokenConfig needs a secret and HS256 in algorithms")
    if not _is_int(user_id) or not 0 < user_id <= _MAX_USER_ID:
        raise ValueError("user_id must be a positive integer")
    try:
        role_value = Role(role).value
    except ValueError:
        raise ValueError(
            f"unknown role {role!r}; expected one of {[r.value for r in Role]}"
        ) from None
    ttl = config.access_ttl_seconds if ttl_seconds is None else ttl_seconds
    if not _is_int(ttl) or ttl <= 0:
        raise ValueError("ttl_seconds must be a positive integer")

    issued = math.floor(_timestamp(now))
    payload: dict[str, Any] = {
        "sub": str(user_id),
        "role": role_value,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl,
        "jti": uuid.uuid4().hex,
    }
    if config.issuer is not None:
        payload["iss"] = config.issuer
    if config.audience is not None:
        payload["aud"] = config.audience
    return jwt.encode(payload, config.secret, algorithm="HS256")


def verify_token(config: TokenConfig, token: str, *, now: datetime | None = None) -> Claims:
    """The claims of `token` if it is acceptable under `config` at `now`; else raise `AuthError`.

    `now` (timezone-aware) defaults to the current time. See the module docstring for what is
    checked. Raises `AuthError`: code `token_expired` for a token that is expired but otherwise
    acceptable, `invalid_token` for every other fault.
    """
    now_ts = _timestamp(now)
    if not isinstance(token, str) or not token:
        raise _invalid("token is missing")
    if len(token) > MAX_TOKEN_LENGTH:
        raise _invalid("token is too long")
    cached = config._verified.get(token)
    if cached is not None:
        return _checked_claims(cached, now_ts, config.leeway_seconds)
    payload = _verified_payload(config, token)
    claims = _checked_claims(payload, now_ts, config.leeway_seconds)
    # Only tokens good now are kept (an expired one is refused anyway); the oldest entry
    # makes room, so the cache stays bounded however many tokens are seen.
    if len(config._verified) >= VERIFIED_CACHE_SIZE:
        del config._verified[next(iter(config._verified))]
    config._verified[token] = payload
    return claims


def _verified_payload(config: TokenConfig, token: str) -> dict[str, Any]:
    """The payload of a token whose signature and claims PyJWT accepted under `config`."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _invalid("token is malformed") from None

    # The header is attacker-controlled: it may only pick among the algorithms we allow, and
    # only the one it names is passed on, with the key of that algorithm's family.
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in config.algorithms:
        raise _invalid(_rejected_alg_message(alg))
    try:
        payload = jwt.decode(
            token,
            _key_for(config, alg),
            algorithms=[alg],
            audience=config.audience,
            issuer=config.issuer,
            options=_DECODE_OPTIONS,
        )
    except jwt.PyJWTError as exc:
        # `from None`: PyJWT's own messages are not ours to show, and we never chain the token.
        raise _invalid(_decode_failure_message(exc)) from None
    return payload


def token_ttl_remaining(claims: Claims, now: datetime) -> float:
    """Seconds from `now` (timezone-aware) until the token expires; 0.0 once it has expired."""
    return max(0.0, claims.expires_at.timestamp() - _timestamp(now))


# --- helpers -------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_secret(secret: str | None) -> None:
    if not secret:
        raise ValueError("HS256 needs a secret")
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"the HS256 secret must be at least {MIN_SECRET_BYTES} bytes long")
    # PyJWT refuses such keys when verifying; refusing here makes the mistake visible at startup.
    if secret.lstrip().startswith("-----BEGIN"):
        raise ValueError("the HS256 secret looks like a PEM key; it must be a random shared secret")


def _load_public_key(pem: str, alg: str) -> _PublicKey:
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(
            "public_key must be a PEM public key ('-----BEGIN PUBLIC KEY-----'), "
            "not a private key or a certificate"
        ) from None
    if alg == "RS256":
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("RS256 needs an RSA public key")
        if key.key_size < MIN_RSA_KEY_BITS:
            raise ValueError(f"the RSA public key must be at least {MIN_RSA_KEY_BITS} bits")
        return key
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("ES256 needs an EC public key on curve P-256")
    return key


def _key_for(config: TokenConfig, alg: str) -> str | _PublicKey:
    # By family, never "whichever key is configured": an HS token is only ever checked with the
    # shared secret, so the (public) RSA/EC key can never be used as an HMAC secret.
    key = config.secret if alg.startswith("HS") else config._verifying_key
    if key is None:  # unreachable: TokenConfig.__post_init__ requires the key of every alg
        raise AssertionError(f"no key configured for allowed algorithm {alg}")
    return key


def _timestamp(now: datetime | None) -> float:
    if now is None:
        return datetime.now(UTC).timestamp()
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.timestamp()


def _invalid(message: str) -> AuthError:
    return AuthError(message, code=ErrorCode.INVALID_TOKEN)


def _rejected_alg_message(alg: object) -> str:
    if alg is None:
        return "token header names no algorithm"
    # Name the algorithm only when it is short and plain: the header is attacker-controlled.
    if isinstance(alg, str) and _SAFE_ALG.fullmatch(alg):
        return f"token algorithm '{alg}' is not accepted"
    return "token algorithm is not accepted"


def _decode_failure_message(exc: jwt.PyJWTError) -> str:
    # Most specific first: InvalidSignatureError is a DecodeError.
    if isinstance(exc, jwt.InvalidSignatureError):
        return "token signature is invalid"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token is missing the '{exc.claim}' claim"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "token issuer is not accepted"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "token audience is not accepted"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "token algorithm is not accepted"
    if isinstance(exc, jwt.DecodeError):
        return "token is malformed"
    return "token is invalid"


def _numeric_date(payload: dict[str, Any], name: str) -> float:
    value = payload[name]
    # bool is an int in Python and JSON's Infinity/NaN parse as floats: neither is a time.
    if _is_int(value) or isinstance(value, float):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
        if math.isfinite(seconds):
            return seconds
    raise _invalid(f"token claim '{name}' is not a valid time")


def _as_datetime(seconds: float, name: str) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError):
        raise _invalid(f"token claim '{name}' is out of range") from None


def _checked_claims(payload: dict[str, Any], now: float, leeway: int) -> Claims:
    # Shape first, times last: `token_expired` then means "fine but for its age", which is
    # what tells a client that getting a fresh token will help.
    sub = payload["sub"]
    if not isinstance(sub, str) or not _USER_ID.fullmatch(sub) or int(sub) > _MAX_USER_ID:
        raise _invalid("token subject is not a user id")
    role = payload.get("role")
    if role is not None and not isinstance(role, str):
        raise _invalid("token claim 'role' is not a string")
    jti = payload.get("jti")
    if jti is not None and not isinstance(jti, str):
        raise _invalid("token claim 'jti' is not a string")
    expires = _numeric_date(payload, "exp")
    issued = _numeric_date(payload, "iat")
    not_before = _numeric_date(payload, "nbf") if "nbf" in payload else None
    expires_at = _as_datetime(expires, "exp")
    issued_at = _as_datetime(issued, "iat")

    if not_before is not None and not_before > now + leeway:
        raise _invalid("token is not valid yet")
    if issued > now + leeway:
        raise _invalid("token was issued in the future")
    # Same boundary as PyJWT: a token is dead at its `exp` second, not one second later.
    if expires <= now - leeway:
        raise AuthError("token has expired", code=ErrorCode.TOKEN_EXPIRED)

    return Claims(user_id=int(sub), role=role, expires_at=expires_at, issued_at=issued_at, jti=jti)
