"""Use-cases: the only code that changes state.

Each action is one async function `action(db, actor, ...) -> Result[T]`: it validates, checks
the permission matrix, applies the change and writes its events (and the notifications it
causes) to the outbox in the same transaction. REST and WebSocket commands call these same
functions; nothing else writes.
"""
