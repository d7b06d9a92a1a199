"""Imports every model module so `Base.metadata` knows all tables (migrations, tests)."""

from models import certificates, conversations, registrations, users
from models.base import Base

__all__ = ["Base", "certificates", "conversations", "registrations", "users"]
