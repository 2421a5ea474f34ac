"""REST requests counted by status class, so REST errors have a denominator (error rate)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RequestCounterMiddleware:
    """Counts every HTTP response as `bugstream_http_requests_total{status="2xx"|...}`.

    Status classes, not paths or codes: a bounded set of series whatever clients ask for.
    """

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "bugstream_http_requests",
            "HTTP requests answered (REST, web, operations), by status class",
            ["status"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status_class = "5xx"  # unless a response starts (an unanswered request failed)

        async def counting_send(message: Message) -> None:
            nonlocal status_class
            if message["type"] == "http.response.start":
                status_class = f"{int(message['status']) // 100}xx"
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.requests.labels(status_class).inc()
