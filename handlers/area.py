"""How the served area and the office to contact are named to people."""

from __future__ import annotations

from handlers.context import Context, TaskContext
from handlers.i18n import _
from models.admin_units import Area, CommuneMatch

# Above this many units the area is named by its province alone.
MAX_NAMED_UNITS = 12


def served_area(area: Area) -> str:
    """The setting (OCOP_AREA_NAME), else the province or the short names of its units:
    "xã, phường Đức Phổ, Trà Câu, … (Quảng Ngãi)"."""
    if area.name:
        return area.name
    all_units = len(area.communes) > MAX_NAMED_UNITS
    if all_units:
        return _("{province} (all communes and wards)").format(province=area.province_name)
    return _("the communes and wards {communes} ({province})").format(
        communes=", ".join(c.short_name for c in area.communes), province=area.province_name
    )


def office_contact(ctx: Context | TaskContext) -> str:
    """Whom a producer asks for help: the setting (OCOP_OFFICE_CONTACT), else the office named
    in the personal-data notice."""
    return ctx.services.office_contact or ctx.services.data_controller


def describe_match(match: CommuneMatch) -> str:
    """What a typed name means now: "Xã Nguyễn Nghiêm (đơn vị mới)", or "Phường Nguyễn Nghiêm
    cũ, nay thuộc Phường Đức Phổ" for a pre-2025 unit."""
    if match.legacy_unit is None:
        return _("{name} (new unit)").format(name=match.commune.name)
    label = _("former {old}, now in {new}").format(old=match.legacy_unit, new=match.commune.name)
    return label[:1].upper() + label[1:]


def current_and_former(matches: list[CommuneMatch]) -> bool:
    """A name of a current unit that also names a former unit now inside another one."""
    return any(m.legacy_unit for m in matches) and any(m.legacy_unit is None for m in matches)
