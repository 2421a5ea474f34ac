"""Storage: tables, the transactional outbox, repositories and migrations.

One code base serves SQLite (pysqlite on the event loop, the zero-setup default) and PostgreSQL
(asyncpg).
"""
