"""The shared domain: models, enums, the event catalog, permission rules and error codes.

Nothing here imports the rest of bugstream, so the SDK (`bugstream.client`) can use it without
the server's dependencies.
"""
