"""What a hung test was waiting for: pytest-timeout's thread timer, plus the stacks of the
asyncio tasks still pending (the thread stacks alone show only the event loop's select).

The thread method, not SIGALRM: the signal's exception lands in whichever task is running and
can be swallowed there (a relay's loop once ate it and the run hung on); the thread method
ends the run for certain after printing what it saw."""

from __future__ import annotations

import asyncio
import gc
import io
import threading
from typing import Any

import pytest_timeout


def pending_task_stacks() -> str:
    out = io.StringIO()
    tasks = [o for o in gc.get_objects() if isinstance(o, asyncio.Task) and not o.done()]
    for task in tasks:
        out.write(f"--- {task!r}\n")
        try:
            task.print_stack(limit=20, file=out)
        except Exception as exc:  # a task changing under us: report and go on
            out.write(f"(stack unavailable: {exc!r})\n")
    return out.getvalue() or "(no pending asyncio tasks)\n"


def report_and_exit(item: Any, settings: Any) -> None:
    terminal = item.config.get_terminal_writer()
    terminal.sep("+", title=f"Timeout after {settings.timeout:g} s: pending asyncio tasks")
    terminal.write(pending_task_stacks())
    pytest_timeout.timeout_timer(item, settings)  # thread stacks, then os._exit(1)


def start_timer(item: Any, settings: Any) -> None:
    timer = threading.Timer(settings.timeout, report_and_exit, (item, settings))
    timer.name = f"hang report {item.nodeid}"
    timer.daemon = True

    def cancel() -> None:
        timer.cancel()
        timer.join()

    item.cancel_timeout = cancel
    timer.start()
