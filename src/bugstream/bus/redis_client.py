"""The Redis client every Redis backend uses (the event log, the connection slots).

Retry a command that fails on a broken connection: after Redis restarts, every pooled
connection is dead, and without a retry the first command on each fails. Every command the
backends send is idempotent (publish drops ids it has; lease updates set absolute expiries),
so retrying is safe. A blocking pool: when every connection is busy (a reconnect storm: a
slot and a replay per handshake), a command waits for one instead of failing at once with
MaxConnectionsError, as the default pool does.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


def redis_client(
    url: str,
    *,
    max_connections: int = 64,
    pool_timeout: float = 10.0,
    client_name: str | None = None,
) -> Redis:
    """A client whose pool closes with it (`aclose`); `client_name` names its connections in
    Redis's `CLIENT LIST`."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout,
        client_name=client_name,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return Redis.from_pool(pool)
