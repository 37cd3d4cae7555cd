"""All models, re-exported so that `Base.metadata` knows every table."""

from core.models.audit import AuditEntry
from core.models.baodao import (
    BaodaoRegistration,
    PartyOrganisation,
    RegistrationStatus,
    ServiceCentre,
    WorkUnit,
)
from core.models.base import Base, TimestampMixin, UTCDateTime, utcnow
from core.models.broadcasts import (
    Broadcast,
    BroadcastAudience,
    BroadcastDelivery,
    BroadcastState,
    DeliveryState,
)
from core.models.callbacks import CallbackRequest, CallbackState
from core.models.chat_state import IssuedButton, Prompt
from core.models.consult import (
    Consultation,
    ConsultationComment,
    ConsultationVote,
    Proposal,
    ProposalSupport,
    ResidentCheck,
)
from core.models.duties import (
    Attendance,
    AttendanceStatus,
    Audience,
    Event,
    EventInvitee,
    EventKind,
    EventOccurrence,
    ReminderMute,
    Shift,
    ShiftSignup,
    SignupStatus,
)
from core.models.inbox import InboxMessage, InboxState
from core.models.invites import InviteCode
from core.models.kept import FigureVersion, KeptFigures
from core.models.lists import Need, NeedStatus, Project, ProjectRating, ProjectStatus, Resource
from core.models.open311 import ApiKey, Open311Request
from core.models.outbox import OutboxMessage, SendState
from core.models.people import (
    JOINED_GRANT,
    JOINED_INVITE,
    JOINED_REGISTRY,
    Branch,
    BranchMember,
    PartyGroup,
    Person,
    Role,
    RoleGrant,
)
from core.models.ratebudget import RateBudget
from core.models.registry import Building, Community, Grid, Landmark, Street
from core.models.spaces import (
    ACTIVE_STATUSES,
    Booking,
    BookingSource,
    BookingStatus,
    Space,
    SpaceManager,
)
from core.models.tickets import (
    Category,
    CategoryKind,
    DeadlineStep,
    Ticket,
    TicketCounter,
    TicketDeadline,
    TicketEvent,
    TicketFollower,
    TicketStatus,
)
from core.models.updates import ReceivedUpdate
from core.models.web import WebLoginToken, WebSession

__all__ = [
    "ACTIVE_STATUSES",
    "Booking",
    "BookingSource",
    "BookingStatus",
    "Space",
    "SpaceManager",
    "Need",
    "NeedStatus",
    "Project",
    "ProjectRating",
    "ProjectStatus",
    "Resource",
    "Consultation",
    "ConsultationComment",
    "ConsultationVote",
    "Proposal",
    "ProposalSupport",
    "ResidentCheck",
    "BaodaoRegistration",
    "PartyOrganisation",
    "RegistrationStatus",
    "ServiceCentre",
    "WorkUnit",
    "FigureVersion",
    "KeptFigures",
    "RateBudget",
    "WebLoginToken",
    "WebSession",
    "ApiKey",
    "Open311Request",
    "JOINED_GRANT",
    "JOINED_INVITE",
    "JOINED_REGISTRY",
    "Attendance",
    "AuditEntry",
    "AttendanceStatus",
    "Audience",
    "Base",
    "Broadcast",
    "BroadcastAudience",
    "BroadcastDelivery",
    "BroadcastState",
    "CallbackRequest",
    "CallbackState",
    "DeliveryState",
    "Branch",
    "BranchMember",
    "Building",
    "Category",
    "CategoryKind",
    "Community",
    "Event",
    "EventInvitee",
    "EventKind",
    "EventOccurrence",
    "Grid",
    "InboxMessage",
    "IssuedButton",
    "InboxState",
    "InviteCode",
    "Landmark",
    "OutboxMessage",
    "PartyGroup",
    "Prompt",
    "Person",
    "ReceivedUpdate",
    "ReminderMute",
    "Role",
    "RoleGrant",
    "SendState",
    "Shift",
    "ShiftSignup",
    "SignupStatus",
    "Street",
    "DeadlineStep",
    "Ticket",
    "TicketCounter",
    "TicketDeadline",
    "TicketEvent",
    "TicketFollower",
    "TicketStatus",
    "TimestampMixin",
    "UTCDateTime",
    "utcnow",
]
