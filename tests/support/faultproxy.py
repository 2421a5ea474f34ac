"""A fault-injecting TCP proxy: the network conditions netem would give, in user space.

netem is not in this kernel (`tc qdisc ... netem`: "Specified qdisc kind is unknown"), so
tests put this proxy between a client and the server and turn its knobs while traffic flows:

- `latency`: seconds added to every chunk, each way (order kept, like a long link);
- `bandwidth`: bytes per second, each way, per connection (a slow link; the sender's socket
  fills and its writes wait, as on a real one);
- `stall()` / `resume()`: nothing moves either way, and new connections are accepted but
  hear nothing: packet loss as TCP sees it (the bytes are held, not dropped, and flow again
  in order on `resume()`, as retransmission would deliver them);
- `reset_all()`: every open connection is reset (RST to both ends), as by a NAT or load
  balancer that lost its state; new connections work;
- `cut()` / `restore()`: the link is gone: open connections are reset and new ones refused
  (reset at once) until `restore()`;
- `block_websockets`: a proxy that lets plain HTTP through but not WebSockets: each new
  connection's request head is read, and a WebSocket upgrade is answered `403` ("refuse") or
  reset ("reset"); any other request is forwarded as usual.

`FaultProxy` runs on the caller's event loop; `ProxyThread` runs one on a loop of its own, for
synchronous tests (Playwright) that drive it from another thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal, TypeVar

CHUNK = 16 * 1024
QUEUED_CHUNKS = 64  # per direction: a stalled or slow link pushes back on its sender

T = TypeVar("T")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0) instead of FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One proxied connection: the client's socket and ours to the upstream."""

    def __init__(
        self,
        proxy: FaultProxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.tasks = [
            asyncio.create_task(self._pump(client[0], upstream[1])),
            asyncio.create_task(self._pump(upstream[0], client[1])),
        ]
        self.done = asyncio.gather(*self.tasks, return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUED_CHUNKS)

        async def receive() -> None:
            try:
                while True:
                    bandwidth = self.proxy.bandwidth
                    size = CHUNK if bandwidth is None else max(256, min(CHUNK, bandwidth // 20))
                    data = await reader.read(size)
                    await queue.put((loop.time() + self.proxy.latency, data))
                    if not data:
                        return
            except OSError:
                await queue.put((0.0, b""))

        receiving = asyncio.create_task(receive())
        try:
            while True:
                due, data = await queue.get()
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                await self.proxy.flowing.wait()
                if self.proxy.bandwidth is not None:
                    await asyncio.sleep(len(data) / self.proxy.bandwidth)
                    await self.proxy.flowing.wait()
                writer.write(data)
                await writer.drain()
        except OSError:
            self.reset()
        finally:
            receiving.cancel()

    def reset(self) -> None:
        for task in self.tasks:
            task.cancel()
        _reset(self.client[1])
        _reset(self.upstream[1])


class FaultProxy:
    """Listens on 127.0.0.1:`port` (0: any free port) and forwards to `upstream`."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", port: int = 0):
        self.upstream = (upstream_host, upstream_port)
        self.port = port
        self.latency = 0.0
        self.bandwidth: int | None = None
        self.accepted = 0  # connections accepted (and forwarded or refused)
        self.refused = 0
        self.block_websockets: Literal["refuse", "reset"] | None = None
        self.blocked_upgrades = 0
        self._cut = False
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self.flowing = asyncio.Event()
        self.flowing.set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.reset()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def open_links(self) -> int:
        return len(self._links)

    def stall(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def reset_all(self) -> None:
        for link in list(self._links):
            link.reset()

    def cut(self) -> None:
        self._cut = True
        self.reset_all()

    def restore(self) -> None:
        self._cut = False
        self.resume()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._cut:
            self.refused += 1
            _reset(writer)
            return
        head = b""
        if self.block_websockets is not None:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                _reset(writer)
                return
            if b"\r\nupgrade: websocket" in head.lower():
                self._refuse_upgrade(writer)
                return
        try:
            upstream = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(writer)
            return
        upstream[1].write(head)  # what was read to look at it goes on first
        link = _Link(self, (reader, writer), upstream)
        self._links.add(link)
        try:
            await link.done
        finally:
            self._links.discard(link)
            for _, w in (link.client, link.upstream):
                w.close()

    def _refuse_upgrade(self, writer: asyncio.StreamWriter) -> None:
        self.blocked_upgrades += 1
        if self.block_websockets == "reset":
            _reset(writer)
            return
        body = b"WebSockets are not allowed here\n"
        writer.write(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        writer.close()


class ProxyThread:
    """A `FaultProxy` on an event loop in a thread of its own; `call` runs a function on the
    proxy in that loop and returns its result (the knobs are not thread-safe otherwise)."""

    def __init__(self, proxy: FaultProxy, loop: asyncio.AbstractEventLoop) -> None:
        self.proxy = proxy
        self._loop = loop

    @property
    def port(self) -> int:
        return self.proxy.port

    def call(self, fn: Callable[[FaultProxy], T]) -> T:
        async def run() -> T:
            return fn(self.proxy)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)


@contextmanager
def proxy_thread(upstream_port: int) -> Iterator[ProxyThread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
    thread.start()

    async def start() -> FaultProxy:
        return await FaultProxy(upstream_port).start()

    proxy = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield ProxyThread(proxy, loop)
    finally:
        asyncio.run_coroutine_threadsafe(proxy.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
