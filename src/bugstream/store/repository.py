"""A small generic repository: one table, one entity model, on one connection.

Repositories only read and write rows; they know nothing of permissions or events (that is the
services' job) and never commit (the transaction does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Table, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bugstream.domain.models import Entity

E = TypeVar("E", bound=Entity)


class Repository(Generic[E]):
    table: Table
    model: type[E]

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    def _to_model(self, row: Any) -> E:
        return self.model.model_validate(row._mapping)

    async def get(self, entity_id: int, *, for_update: bool = False) -> E | None:
        query = select(self.table).where(self.table.c.id == entity_id)
        if for_update and self.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await self.conn.execute(query)).first()
        return None if row is None else self._to_model(row)

    async def insert(self, values: Mapping[str, Any]) -> E:
        row = (
            await self.conn.execute(insert(self.table).values(**values).returning(self.table))
        ).one()
        return self._to_model(row)

    async def update(self, entity_id: int, values: Mapping[str, Any]) -> E | None:
        row = (
            await self.conn.execute(
                update(self.table)
                .where(self.table.c.id == entity_id)
                .values(**values)
                .returning(self.table)
            )
        ).first()
        return None if row is None else self._to_model(row)

    async def delete(self, entity_id: int) -> bool:
        result = await self.conn.execute(delete(self.table).where(self.table.c.id == entity_id))
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
