"""The real-time gateway behind `/ws`.

The core (`gateway.py`, `hub.py`, `connection.py`, `messages.py`, ...) knows nothing of the
WebSocket server library: a listener adapter (`uvicorn_protocol.py`) does the handshake and
framing and hands the gateway a `FrameSink` per connection. See docs/design.md.
"""
