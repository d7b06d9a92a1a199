"""Imports every model module so `Base.metadata` knows all tables (migrations, tests)."""

from models import (
    arrivals,
    audit,
    certificates,
    consent,
    conversations,
    digests,
    dossier,
    inbox,
    menus,
    officials,
    outbox,
    registrations,
    tasks,
    users,
    zalo_oa,
)
from models.base import Base

__all__ = [
    "Base",
    "arrivals",
    "audit",
    "certificates",
    "consent",
    "conversations",
    "digests",
    "dossier",
    "inbox",
    "menus",
    "officials",
    "outbox",
    "registrations",
    "tasks",
    "users",
    "zalo_oa",
]
