"""A small generic repository: one table, one entity model, on one connection.

Repositories only read and write rows; they know nothing of permissions or events (that is the
services' job) and never commit (the transaction does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    Delete,
    Insert,
    Select,
    Table,
    Update,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from bugstream.domain.models import Entity

E = TypeVar("E", bound=Entity)

#: The bound parameter that names the row in the statements built once per table.
_ID = "entity_id"


class _Statements:
    """A table's single-row statements, built once: building a statement and its cache key
    costs more than executing it on SQLite (the values of an insert or update come as
    execution parameters, so one statement serves every call)."""

    def __init__(self, table: Table) -> None:
        by_id = table.c.id == bindparam(_ID)
        self.get: Select[Any] = select(table).where(by_id)
        self.get_for_update: Select[Any] = self.get.with_for_update()
        self.insert: Insert = insert(table).returning(table)
        self.update: Update = update(table).where(by_id).returning(table)
        self.delete: Delete = delete(table).where(by_id)


class Repository(Generic[E]):
    table: Table
    model: type[E]
    _statements: _Statements

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "table" in cls.__dict__:
            cls._statements = _Statements(cls.table)

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    def _to_model(self, row: Any) -> E:
        return self.model.model_validate(row._mapping)

    async def get(self, entity_id: int, *, for_update: bool = False) -> E | None:
        statements = self._statements
        query = (
            statements.get_for_update
            if for_update and self.conn.dialect.name == "postgresql"
            else statements.get
        )
        row = (await self.conn.execute(query, {_ID: entity_id})).first()
        return None if row is None else self._to_model(row)

    async def insert(self, values: Mapping[str, Any]) -> E:
        row = (await self.conn.execute(self._statements.insert, dict(values))).one()
        return self._to_model(row)

    async def update(self, entity_id: int, values: Mapping[str, Any]) -> E | None:
        row = (await self.conn.execute(self._statements.update, {**values, _ID: entity_id})).first()
        return None if row is None else self._to_model(row)

    async def delete(self, entity_id: int) -> bool:
        result = await self.conn.execute(self._statements.delete, {_ID: entity_id})
        return bool(result.rowcount)

    async def list(
        self,
        where: Sequence[ColumnElement[bool]] = (),
        *,
        limit: int,
        offset: int,
    ) -> tuple[list[E], int]:
        """One page ordered by id, and the total count matching `where`."""
        query = select(self.table).where(*where).order_by(self.table.c.id)
        rows = await self.conn.execute(query.limit(limit).offset(offset))
        total = (
            await self.conn.execute(select(func.count()).select_from(self.table).where(*where))
        ).scalar_one()
        return [self._to_model(r) for r in rows], int(total)
