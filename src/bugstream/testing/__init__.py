"""Test helpers, as public API (`pip install bugstream[testing]`).

- `bugstream.testing.live`: `live_server(...)`, a real server on a loopback port in your
  event loop, and `StreamClient`, a raw WebSocket client with `next`/`expect`/`events` and
  timeouts;
- `bugstream.testing.scripted`: `scripted_server(...)`, a WebSocket server that follows a
  script (refuse, close with a code, welcome and answer), for testing applications built
  on the SDK without a bugstream server;
- `bugstream.testing.bus_contract`: the contract suite every bus backend must pass.

bugstream's own tests use them (tests/support/live.py re-exports `live`).
"""
