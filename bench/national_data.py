"""A national-scale database for the benchmarks: 100,000 registrations and 20,000 certificates
spread evenly over all 3,321 current communes, written with bulk Core inserts in one transaction.

Every commune gets the same expected share, so a province's share is proportional to its
commune count: the largest province (Hồ Chí Minh City, 168 communes) holds about 5% of the rows,
the share a big province has in the real programme. Every registration is in one programme year
(the year of `NOW`), so the year's full export has all 100,000 rows. Rows are deterministic
(seeded), with Vietnamese names and addresses of realistic length, a few values that begin with
a formula character, statuses of a year in progress (a fifth still waiting for review) and
certificates issued over six years (a tenth of the products renewed once).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine
from vietnam_provinces import Ward

from models.base import Base
from models.certificates import Certificate
from models.domain import (
    ProductGroup,
    RegistrationKind,
    RegistrationStatus,
    Role,
    SubjectType,
    Target,
    certificate_expiry,
)
from models.registrations import Product, Registration, Subject
from models.users import User

NOW = dt.datetime(2026, 11, 29, 0, 30, tzinfo=dt.UTC)  # 07:30 in Vietnam, the digest's hour
YEAR = 2026
OFFICIAL_ID = 1  # users.id of the province-wide official (scope None)

FAMILY = "Nguyễn Trần Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương Lý".split()
MIDDLE = "Văn Thị Hữu Đức Minh Thanh Ngọc Quốc Xuân".split()
GIVEN = "An Bình Cường Dũng Hà Hải Hạnh Hoa Hùng Lan Long Mai Nam Phúc Quang Sơn Tâm Tú".split()
GOODS = (
    "Nước mắm cá cơm", "Mật ong rừng", "Chè shan tuyết", "Gạo thơm", "Bánh tráng mè",
    "Tinh dầu sả chanh", "Rượu cần", "Mây tre đan", "Cà phê rang xay", "Tỏi cô đơn",
    "Chả cá thu", "Miến dong", "Trà hoa vàng", "Nón lá", "Bưởi da xanh", "Hạt điều rang muối",
)  # fmt: skip
QUALIFIERS = ("loại đặc biệt", "truyền thống", "hữu cơ", "cao cấp", "đóng chai 500ml", "")
HAMLETS = ("Thôn", "Tổ dân phố", "Ấp", "Bản", "Khu phố")
PREFIXES = ("HTX", "Công ty TNHH", "Tổ hợp tác", "Hộ kinh doanh")
SUBJECT_TYPES, GROUPS = tuple(SubjectType), tuple(ProductGroup)
KIND_TARGETS = {
    RegistrationKind.REEVALUATION: (Target.STAR3, Target.STAR4, Target.STAR5),
    RegistrationKind.UPGRADE: (Target.UP_3_TO_4, Target.UP_4_TO_5),
}
STATUSES = (
    (RegistrationStatus.SUBMITTED, 20), (RegistrationStatus.ACCEPTED, 20),
    (RegistrationStatus.RETURNED, 5), (RegistrationStatus.REJECTED, 5),
    (RegistrationStatus.CERTIFIED, 30), (RegistrationStatus.FAILED, 10),
    (RegistrationStatus.DEFERRED, 10),
)  # fmt: skip


@dataclass(frozen=True)
class Size:
    registrations: int = 100_000
    certificates: int = 20_000
    subjects: int = 40_000


def commune_codes() -> list[str]:
    """Every current commune-level unit of the country, as five-digit codes."""
    return sorted(f"{int(ward.code):05d}" for ward in Ward.iter_all())


def _person(rng: random.Random) -> str:
    return f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"


def _address(rng: random.Random, n: int) -> str:
    text = f"{rng.choice(HAMLETS)} {n % 97 + 1}, số nhà {n % 311 + 2} đường liên xã"
    return "-" + text if n % 997 == 0 else text  # a few values a spreadsheet would evaluate


def _moment(rng: random.Random, first: dt.datetime, last: dt.datetime) -> dt.datetime:
    return first + (last - first) * rng.random()


def _rows(
    size: Size, seed: int, communes: Sequence[str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)
    communes = list(communes or commune_codes())
    users: list[dict[str, Any]] = []
    subjects, home = [], []
    for s in range(size.subjects):
        user_id, owner = s + 2, _person(rng)
        blocked = s % 100 == 0  # one producer in a hundred blocked the bot during the last day
        users.append(
            {"id": user_id, "channel": "telegram", "channel_user_id": str(user_id),
             "chat_id": str(user_id), "display_name": owner, "language": "vi",
             "role": Role.PRODUCER, "phone": f"+849{rng.randrange(10**8):08d}",
             "reachable": not blocked, "created_at": NOW,
             "unreachable_since": _moment(rng, NOW - dt.timedelta(days=1), NOW) if blocked
             else None}
        )  # fmt: skip
        subject_type = SUBJECT_TYPES[s % 4]
        subjects.append(
            {"id": s + 1, "owner_user_id": user_id, "subject_type": subject_type,
             "representative": owner,
             "name": f"{PREFIXES[s % 4]} {rng.choice(GIVEN)} {rng.choice(GOODS).split()[-1]}",
             "address": _address(rng, s), "phone": users[-1]["phone"], "created_at": NOW}
        )  # fmt: skip
        home.append(rng.choice(communes))
    products, registrations = [], []
    for p in range(size.registrations):
        s = p % size.subjects
        group = GROUPS[p % 6]
        name = f"{rng.choice(GOODS)} {rng.choice(QUALIFIERS)}".strip()
        products.append(
            {"id": p + 1, "subject_id": s + 1, "name": name, "product_group": group,
             "commune_code": home[s], "ecommerce": p % 3 == 0, "created_at": NOW}
        )  # fmt: skip
    certified = rng.sample(range(size.registrations), size.certificates * 9 // 10)
    certificates: list[dict[str, Any]] = []
    first_issue = dt.date(2020, 1, 1)
    for c in range(size.certificates):
        p = certified[c % len(certified)]
        issued = first_issue + dt.timedelta(days=rng.randrange(2_520))
        if c >= len(certified):  # a renewal: a second certificate three years after the first
            issued = certificate_expiry(certificates[c % len(certified)]["issue_date"])
        star = (3, 3, 3, 4, 4, 5)[rng.randrange(6)] if c < len(certified) else 4
        certificates.append(
            {"id": c + 1, "product_id": p + 1, "star": star, "issue_date": issued,
             "expiry_date": certificate_expiry(issued), "decision_number": f"{c + 1}/QĐ-UBND",
             "issuing_level": "tỉnh", "created_at": NOW}
        )  # fmt: skip
    renewing = {row["product_id"]: row for row in certificates}
    statuses, weights = zip(*STATUSES, strict=True)
    drawn = rng.choices(statuses, weights, k=len(products))
    for p, product in enumerate(products):
        subject = subjects[p % size.subjects]
        held = renewing.get(p + 1)
        if held is not None and rng.random() < 0.75:
            kind = RegistrationKind.REEVALUATION if rng.random() < 0.7 else RegistrationKind.UPGRADE
            target = rng.choice(KIND_TARGETS[kind])
        else:
            kind, held, target = (
                RegistrationKind.NEW,
                None,
                rng.choice((Target.STAR3, Target.STAR4)),
            )
        status = drawn[p]
        submitted = _moment(rng, dt.datetime(YEAR, 1, 2, tzinfo=dt.UTC), NOW)
        changed = submitted
        if status is not RegistrationStatus.SUBMITTED:
            changed = min(NOW, submitted + dt.timedelta(days=30 * rng.random()))
        registrations.append(
            {"id": p + 1, "code": f"OCOP-{YEAR}-{p + 1:06d}", "kind": kind, "target": target,
             "programme_year": YEAR, "commune_code": product["commune_code"],
             "commune_input": None, "legacy_commune": None, "product_id": p + 1,
             "subject_id": subject["id"], "product_name": product["name"],
             "product_group": product["product_group"], "owner_name": subject["representative"],
             "subject_name": subject["name"], "subject_type": subject["subject_type"],
             "address": subject["address"], "phone": subject["phone"],
             "latitude": 10 + rng.random() * 12 if p % 4 == 0 else None,
             "longitude": 103 + rng.random() * 6 if p % 4 == 0 else None,
             "ecommerce": product["ecommerce"], "current_star": held["star"] if held else None,
             "certificate_issue_date": held["issue_date"] if held else None,
             "certificate_id": held["id"] if held else None, "status": status,
             "status_note": "Thiếu hồ sơ" if status is RegistrationStatus.RETURNED else None,
             "submitted_by_user_id": subject["owner_user_id"], "channel": "telegram",
             "submitted_at": submitted, "status_changed_at": changed}
        )  # fmt: skip
    return {
        "users": users,
        "subjects": subjects,
        "products": products,
        "certificates": certificates,
        "registrations": registrations,
    }


async def populate(
    engine: AsyncEngine,
    size: Size = Size(),
    seed: int = 6,
    communes: Sequence[str] | None = None,
) -> dict[str, int]:
    """Fill an empty, migrated database; returns the row count of each table. `communes`: the
    codes to spread the rows over (default: every commune of the country)."""
    rows = _rows(size, seed, communes)
    tables: dict[str, type[Base]] = {
        "users": User,
        "subjects": Subject,
        "products": Product,
        "certificates": Certificate,
        "registrations": Registration,
    }
    official = {"id": OFFICIAL_ID, "channel": "telegram", "channel_user_id": "1", "chat_id": "1",
                "display_name": "Cán bộ tỉnh", "language": "vi", "role": Role.OFFICIAL,
                "scope": None, "reachable": True, "created_at": NOW}  # fmt: skip
    async with engine.begin() as connection:
        await connection.execute(insert(User), official)
        for name, table in tables.items():
            keys = set(rows[name][0])  # executemany takes the first row's keys for every row
            assert all(set(row) == keys for row in rows[name]), name
            await connection.execute(insert(table), rows[name])
        if engine.dialect.name == "postgresql":
            # Explicit ids: move the sequences past them, as a real database's would be.
            for name in tables:
                await connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"(SELECT max(id) FROM {name}))"
                    )
                )
    if engine.dialect.name == "postgresql":
        # Autovacuum analyzes a freshly loaded table within a minute; do it now.
        async with engine.connect() as connection:
            await connection.execute(text("ANALYZE"))
            await connection.commit()
    return {name: len(values) for name, values in rows.items()}
