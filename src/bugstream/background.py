"""The service's background loops, and stopping background tasks.

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
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


class BackgroundLoop:
    """Runs `step` every `interval` seconds, and at once when woken (`wake`), from `start()`
    until `stop()`: the relay, change capture, reminders, lease renewal, the summary line.

    - A failed step (the database briefly away) is logged on `log` as `failure`, and the
      next one runs after `interval`, woken or not: a wake per commit must not turn an
      outage into a busy retry loop.
    - The wait is `asyncio.timeout`, not `wait_for`, which on Python 3.11 returns normally
      when a cancel arrives with the wakeup (the cancel is lost).
    - `stop()` sets `stopping` as well as cancelling: code under a step sometimes drops the
      cancel (asyncpg, redis-py), and a step that checks `stopping` between its parts (the
      relay's batches) ends anyway.
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[object]],
        *,
        interval: float,
        log: logging.Logger,
        failure: str,
        first_after_interval: bool = False,
    ) -> None:
        self._name = name
        self._step = step
        self._interval = interval
        self._log = log
        self._failure = failure
        self._first_after_interval = first_after_interval
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.stopping = False

    def wake(self) -> None:
        """Run the step now instead of at the end of the interval."""
        self._wakeup.set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self.stopping = False
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        self.stopping = True
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        if self._first_after_interval:
            await self._idle()
        while not self.stopping:
            self._wakeup.clear()
            try:
                await self._step()
            except Exception:
                self._log.exception(self._failure)
                await asyncio.sleep(self._interval)
                continue
            if not self.stopping:
                await self._idle()

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._interval):
                await self._wakeup.wait()


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
