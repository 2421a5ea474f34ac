"""Stopping the service's background tasks (relay, change capture, reminders, leases...).

The usual `task.cancel(); with suppress(CancelledError): await task` has two traps:
- the suppress swallows a cancel aimed at the *caller* as well: a shutdown step that runs
  over its time limit is cancelled, the suppress eats it, and the step "finishes" late while
  the task it was stopping still runs;
- a library that swallows the task's cancel (Python 3.11's `asyncio.wait_for` does when the
  thing it waits for finishes in the same loop turns; redis-py and others use it) leaves the
  task running, and the await never returns.
`cancel_and_wait` lets the caller's cancel through and repeats the task's cancel until the
task has ended, logging how many it ignored (docs/design.md, "Background loops").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


class Periodic:
    """Runs `step` every `interval` seconds, from `start()` until `stop()`. A step that fails
    (the database briefly away) is logged as `failure` and the next one runs on time."""

    def __init__(
        self, name: str, step: Callable[[], Awaitable[None]], *, interval: float, failure: str
    ) -> None:
        self._name = name
        self._step = step
        self._interval = interval
        self._failure = failure
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except Exception:
                log.exception(self._failure)
            await asyncio.sleep(self._interval)


#: How long a cancelled task gets to end (its cleanup included) before it is cancelled again.
RECANCEL_AFTER_SECONDS = 0.25


async def cancel_and_wait(
    task: asyncio.Task[Any] | None, *, recancel_after: float = RECANCEL_AFTER_SECONDS
) -> None:
    """Cancel `task` and return once it has ended (at once if it already had)."""
    if task is None:
        return
    cancels = 0
    ignored_at: list[str] = []
    while not task.done():
        if cancels:
            ignored_at.append(_where(task))
        task.cancel()
        cancels += 1
        await asyncio.wait({task}, timeout=recancel_after)
    if ignored_at:
        log.warning(
            "%s ignored %d cancel(s) before it stopped (running on at: %s)",
            task.get_name(),
            len(ignored_at),
            "; ".join(ignored_at),
        )
    if not task.cancelled() and task.exception() is not None:
        log.error("%s had failed", task.get_name(), exc_info=task.exception())


def _where(task: asyncio.Task[Any]) -> str:
    """Where the task is suspended, innermost frame first (at most three): where it went on
    after a cancel. Follows the chain of awaited coroutines, which `Task.get_stack` does not."""
    frames = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
        if frame is None:
            break
        frames.append(frame)
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
    return (
        " < ".join(
            f"{f.f_code.co_filename.rsplit('/', 1)[-1]}:{f.f_lineno} {f.f_code.co_name}"
            for f in reversed(frames[-3:])
        )
        or "?"
    )
