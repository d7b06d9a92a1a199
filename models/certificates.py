"""OCOP certificates: a product's star, issue date and decision; valid 36 months."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class Certificate(Base):
    __tablename__ = "certificates"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    star: Mapped[int]
    issue_date: Mapped[dt.date]
    expiry_date: Mapped[dt.date] = mapped_column(index=True)
    decision_number: Mapped[str | None] = mapped_column(String(100))
    issuing_level: Mapped[str | None] = mapped_column(String(50))
    # The registration whose evaluation produced it; None for certificates imported from a list.
    # (registrations.certificate_id points the other way, at the certificate a renewal renews.)
    registration_id: Mapped[int | None] = mapped_column(
        ForeignKey("registrations.id", use_alter=True)
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
