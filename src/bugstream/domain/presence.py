"""Presence: who is online in a project and who is viewing which bug report.

Presence is state, not history: it is never written to the outbox, its messages carry no
`event_id` and are not replayed. A client that (re)connects reads the current state with
`GET /api/v1/projects/{id}/presence` and follows the `presence` messages from there
(docs/websocket.md, docs/design.md).

The store that holds it (bus/presence.py: in this process, or Redis across the cluster) reports
each transition as a `PresenceChange`: a user's first connection anywhere (`joined`), their
last one gone (`left`), the first of their connections to view a bug (`viewing`), the last to
stop (`stopped_viewing`). The REST API reads it through `PresenceReader`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel


class PresenceEvent(StrEnum):
    JOINED = "joined"
    LEFT = "left"
    VIEWING = "viewing"
    STOPPED_VIEWING = "stopped_viewing"


@dataclass(frozen=True, slots=True)
class PresenceChange:
    event: PresenceEvent
    user_id: int
    username: str
    #: joined/left: the user's projects when the connection opened (admins: those they are a
    #: member of); viewing/stopped_viewing: the project of the bug report
    project_ids: tuple[int, ...]
    bug_report_id: int | None = None


class PresenceReader(Protocol):
    async def connections(self, user_ids: Collection[int]) -> dict[int, int]:
        """How many open connections (sockets and SSE streams) each of these users has across
        the cluster; users with none are left out."""

    async def viewers(self, project_id: int) -> dict[int, set[int]]:
        """The users viewing each bug report of the project (by bug report id)."""


#: The most users `GET /api/v1/projects/{id}/presence` lists as online, and as viewers of one
#: bug report: a page the board can show; `truncated` says when there were more.
MAX_LISTED = 500


class PresentUser(BaseModel):
    user_id: int
    username: str


class OnlineUser(PresentUser):
    #: open connections (sockets and SSE streams) across the cluster
    connections: int


class BugViewers(BaseModel):
    bug_report_id: int
    users: list[PresentUser]


class ProjectPresence(BaseModel):
    """Who is online in a project (its members with a connection open) and who views which
    of its bug reports, now."""

    project_id: int
    online: list[OnlineUser]
    viewing: list[BugViewers]
    #: whether a list was cut at MAX_LISTED
    truncated: bool = False


async def project_presence(
    reader: PresenceReader, project_id: int, members: dict[int, str]
) -> ProjectPresence:
    """The presence of a project whose members (user id -> username) are given: only members
    are listed (an admin who is not one is not), so a removed member vanishes at once."""
    counts = await reader.connections(list(members))
    online = [
        OnlineUser(user_id=u, username=members[u], connections=n) for u, n in sorted(counts.items())
    ]
    viewing: list[BugViewers] = []
    truncated = len(online) > MAX_LISTED
    for bug, users in sorted((await reader.viewers(project_id)).items()):
        listed = [
            PresentUser(user_id=u, username=members[u]) for u in sorted(users & members.keys())
        ]
        if listed:
            truncated = truncated or len(listed) > MAX_LISTED
            viewing.append(BugViewers(bug_report_id=bug, users=listed[:MAX_LISTED]))
    return ProjectPresence(
        project_id=project_id, online=online[:MAX_LISTED], viewing=viewing, truncated=truncated
    )
