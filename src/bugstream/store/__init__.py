"""Storage: tables, the transactional outbox, repositories and migrations.

One code base serves SQLite (aiosqlite, the zero-setup default) and PostgreSQL (asyncpg).
"""
