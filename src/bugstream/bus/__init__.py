"""The event bus: one ordered, replayable log of committed events shared by every instance.

`memory://` keeps it in this process (one instance); `redis://` keeps it in Redis Streams
(several instances). `create_bus(url)` picks the backend from the URL's scheme.
"""
