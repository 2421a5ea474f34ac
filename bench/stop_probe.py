"""Stop probe: how often does code under the outbox relay drop a cancel, and does stop()
still end it? Four writers commit events without pause (PostgreSQL, the Redis bus); the relay
is started and stopped `--stops` times at varied moments. For every stop it prints the
warning `bugstream.background` logs when the relay ignored a cancel (with where it went on),
then a count and the slowest stop.

    uv run python bench/stop_probe.py --stops 400

Uses database `bench_stop_probe` (dropped and recreated) and Redis db 13 (flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

from common import create_postgres_db, flush_redis

from bugstream.bus.redis import RedisBus
from bugstream.domain.events import EventName, EventType, PendingEvent
from bugstream.store import migrate
from bugstream.store.database import Database
from bugstream.store.relay import OutboxRelay

PAYLOAD = {"id": 1, "name": "p", "description": "", "created_at": "-", "updated_at": "-"}


class CountIgnored(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.ignored = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "ignored" in record.getMessage():
            self.ignored += 1


async def probe(stops: int) -> None:
    url = await create_postgres_db("bench_stop_probe")
    db = Database.from_url(url)
    await migrate.upgrade(db.engine)
    bus = RedisBus(await flush_redis(13), prefix="probe")
    await bus.start()
    await bus.rebase(0)
    counter = CountIgnored()
    logging.getLogger("bugstream.background").addHandler(counter)
    writing = True

    async def writer() -> None:
        while writing:
            async with db.transaction() as tx:
                pending = PendingEvent(EventType.PROJECT, EventName.UPDATED, PAYLOAD, 1)
                await tx.outbox.emit(pending)

    writers = [asyncio.create_task(writer()) for _ in range(4)]
    slowest = 0.0
    try:
        for i in range(stops):
            relay = OutboxRelay(db, bus.publish, bus.last_event_id, poll_interval=0.5)
            db.on_events_committed.append(relay.wake)
            relay.start()
            await asyncio.sleep(0.02 + (i % 7) * 0.003)  # stop at varied points of a pass
            started = time.monotonic()
            await relay.stop()
            slowest = max(slowest, time.monotonic() - started)
            db.on_events_committed.remove(relay.wake)
    finally:
        writing = False
        await asyncio.gather(*writers)
        await bus.close()
        await db.dispose()
    print(
        f"{stops} stops: {counter.ignored} needed the cancel repeated; slowest stop {slowest:.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stops", type=int, default=400)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    asyncio.run(probe(args.stops))


if __name__ == "__main__":
    main()
