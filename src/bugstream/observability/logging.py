"""Structured logs: JSON lines in production, readable lines in development (structlog).

Everything logs through the standard `logging` module (uvicorn too); structlog's
`ProcessorFormatter` renders each record with a UTC timestamp, level, logger name and any
`extra={...}` fields (connection id, user id, reason, duration...) as top-level keys.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

FORMATS = ("json", "console")


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        # Plain tracebacks: with `rich` installed, structlog's default prints every frame's
        # locals; one error with a large request in scope took 15 s of the event loop and
        # 120,000 lines to log (found by the API fuzzer, tests/api/test_openapi_contract.py).
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    # JSON lines carry a traceback as the "exception" field's text (without this step the
    # record's exc_info was rendered as a repr of the tuple: the traceback was lost).
    exceptions: list[Any] = [structlog.processors.format_exc_info] if fmt == "json" else []
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exceptions,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
