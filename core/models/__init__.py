"""All models, re-exported so that `Base.metadata` knows every table."""

from core.models.base import Base, TimestampMixin, UTCDateTime, utcnow
from core.models.inbox import InboxMessage, InboxState
from core.models.outbox import OutboxMessage, SendState
from core.models.people import Branch, BranchMember, PartyGroup, Person, Role, RoleGrant
from core.models.registry import Building, Community, Grid, Landmark, Street
from core.models.tickets import (
    Category,
    CategoryKind,
    Ticket,
    TicketCounter,
    TicketEvent,
    TicketFollower,
    TicketStatus,
)

__all__ = [
    "Base",
    "Branch",
    "BranchMember",
    "Building",
    "Category",
    "CategoryKind",
    "Community",
    "Grid",
    "InboxMessage",
    "InboxState",
    "Landmark",
    "OutboxMessage",
    "PartyGroup",
    "Person",
    "Role",
    "RoleGrant",
    "SendState",
    "Street",
    "Ticket",
    "TicketCounter",
    "TicketEvent",
    "TicketFollower",
    "TicketStatus",
    "TimestampMixin",
    "UTCDateTime",
    "utcnow",
]
