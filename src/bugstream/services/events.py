"""Building the outbox events of each entity, with their routing keys."""

from __future__ import annotations

from typing import Any

from bugstream.domain.events import EventName, EventType, PendingEvent
from bugstream.domain.models import BugReport, Comment, Membership, Notification, Project, User


def bug_event(name: EventName, bug: BugReport, **extra: Any) -> PendingEvent:
    return PendingEvent(
        EventType.BUG_REPORT, name, {**bug.to_payload(), **extra}, project_id=bug.project_id
    )


def comment_event(name: EventName, comment: Comment, project_id: int) -> PendingEvent:
    payload = {**comment.to_payload(), "project_id": project_id}
    return PendingEvent(EventType.COMMENT, name, payload, project_id=project_id)


def project_event(name: EventName, project: Project) -> PendingEvent:
    return PendingEvent(EventType.PROJECT, name, project.to_payload(), project_id=project.id)


def user_event(name: EventName, user: User, **extra: Any) -> PendingEvent:
    return PendingEvent(EventType.USER, name, {**user.to_payload(), **extra}, user_id=user.id)


def notification_event(notification: Notification) -> PendingEvent:
    return PendingEvent(
        EventType.NOTIFICATION,
        EventName(notification.type.value),
        notification.to_payload(),
        user_id=notification.user_id,
    )


def membership_event(name: EventName, membership: Membership) -> PendingEvent:
    return PendingEvent(
        EventType.MEMBERSHIP,
        name,
        membership.to_payload(),
        project_id=membership.project_id,
        user_id=membership.user_id,
    )
