"""The data packages, pinned in pyproject.toml, still give the codes the area uses.

vietnam-provinces gives the current units and their codes; vietnamadminunits maps the pre-2025
names onto them, read from its private data files; the two are joined by ward code. Registrations
store the codes, so a data release that renumbers or remaps a unit would silently file new
registrations under another commune. Raise the pins only with this test passing (and, if a
code moved, with a migration of the stored codes)."""

from __future__ import annotations

import hashlib
from importlib.metadata import version

from vietnam_provinces import Province

from handlers.area import current_and_former
from models.admin_units import Area, _legacy_index, _province_communes
from models.text import fold

PINNED = {"vietnam-provinces": "2025.10.1", "vietnamadminunits": "1.0.4"}
DEFAULT_AREA = {
    "21439": "Phường Đức Phổ",
    "21451": "Phường Trà Câu",
    "21457": "Xã Nguyễn Nghiêm",
    "21472": "Xã Khánh Cường",
    "21478": "Phường Sa Huỳnh",
}
# Every unit of the former Đức Phổ town, and the current unit it became.
FORMER_UNITS = {
    "Phường Nguyễn Nghiêm (Thị xã Đức Phổ)": ("21439",),
    "Phường Phổ Hòa (Thị xã Đức Phổ)": ("21439",),
    "Phường Phổ Minh (Thị xã Đức Phổ)": ("21439",),
    "Phường Phổ Ninh (Thị xã Đức Phổ)": ("21439",),
    "Phường Phổ Vinh (Thị xã Đức Phổ)": ("21439",),
    "Phường Phổ Quang (Thị xã Đức Phổ)": ("21451",),
    "Phường Phổ Văn (Thị xã Đức Phổ)": ("21451",),
    "Xã Phổ An (Thị xã Đức Phổ)": ("21451",),
    "Xã Phổ Thuận (Thị xã Đức Phổ)": ("21451",),
    "Xã Phổ Nhơn (Thị xã Đức Phổ)": ("21457",),
    "Xã Phổ Phong (Thị xã Đức Phổ)": ("21457",),
    "Xã Phổ Cường (Thị xã Đức Phổ)": ("21472",),
    "Xã Phổ Khánh (Thị xã Đức Phổ)": ("21472",),
    "Phường Phổ Thạnh (Thị xã Đức Phổ)": ("21478",),
    "Xã Phổ Châu (Thị xã Đức Phổ)": ("21478",),
}
# The whole province (OCOP_COMMUNE_CODES empty serves all of it): its 96 current units and the
# 272 former ones mapped onto them, as the pinned releases give them.
PROVINCE_UNITS = 96
PROVINCE_DIGEST = "8572f56c3277c9589b041575b41adc05a5b9d3611b9002ede9e900e52658ec7d"
FORMER_DIGEST = "5e1d0d0be01daf4004dc75039672d22ec714acfdab44049d5ef36a77129bc7ed"
CHANGED = "the {} data changed: the codes registrations store may now mean other communes"


def test_the_pinned_releases_are_installed() -> None:
    assert {name: version(name) for name in PINNED} == PINNED


def test_the_default_area_keeps_its_codes_and_names() -> None:
    area = Area("51", list(DEFAULT_AREA))
    assert area.province_name == "Quảng Ngãi"
    assert {c.code: c.name for c in area.communes} == DEFAULT_AREA, CHANGED.format("current")


def test_every_former_unit_of_the_area_maps_where_it_did() -> None:
    mapped = {
        unit.label: unit.new_codes
        for unit in _legacy_index("51").units
        if set(unit.new_codes) & set(DEFAULT_AREA)
    }
    assert mapped == FORMER_UNITS, CHANGED.format("pre-2025")


def test_the_whole_province_is_as_tested() -> None:
    communes = _province_communes("51")
    assert len(communes) == PROVINCE_UNITS, CHANGED.format("current")
    current = repr([(c.code, c.name) for c in communes]).encode()
    assert hashlib.sha256(current).hexdigest() == PROVINCE_DIGEST, CHANGED.format("current")
    former = repr(sorted((u.label, u.new_codes) for u in _legacy_index("51").units)).encode()
    assert hashlib.sha256(former).hexdigest() == FORMER_DIGEST, CHANGED.format("pre-2025")


def _current_and_former_names() -> list[tuple[Area, str, str, str, list[str]]]:
    """Every name, in the whole country, of a current unit that is also the name of a pre-2025
    unit now inside another current unit: (its province's area, the current unit's code, the
    name, the former unit's label, the codes of the units it is in now)."""
    found = []
    for province in Province.iter_all():
        code = f"{int(province.code):02d}"
        area, index = Area(code), _legacy_index(code)
        for commune in area.communes:
            key = fold(commune.short_name)
            # Units named alike today ("Văn Lang", "Văn Lăng") are ambiguous among themselves.
            namesakes = {c.code for c in area.communes if fold(c.short_name) == key}
            for unit in index.by_key.get(key.replace(" ", ""), ()):
                # (A successor code the current list lacks is a data gap of its own.)
                elsewhere = [c for c in unit.new_codes if c not in namesakes and area.get(c)]
                # An unaccented current name ("Quang Trung") typed as it is spelled does not mean
                # an accented former one ("Quảng Trung"): the typed spelling is preferred.
                spelled = fold(commune.short_name) != commune.short_name.lower() or (
                    fold(commune.short_name) in unit.exact
                )
                if not namesakes & set(unit.new_codes) and elsewhere and spelled:
                    found.append((area, commune.code, commune.short_name, unit.label, elsewhere))
    return found


def test_every_name_of_a_current_and_a_former_unit_elsewhere_is_asked() -> None:
    """Typed without accents and without a type word ("nguyen nghiem"), such a name must give
    the current unit first and the former unit's successor too, so the producer is asked; the
    former unit's own type word and name, with its accents, give only the former unit's."""
    names = _current_and_former_names()
    # Nguyễn Nghiêm of the default area is one of them; hundreds more across the country.
    assert ("21457", "Nguyễn Nghiêm", "Phường Nguyễn Nghiêm (Thị xã Đức Phổ)") in {
        (code, name, former) for _area, code, name, former, _now in names
    }
    assert len(names) > 300
    for area, code, name, former, now in names:
        matches = area.match(fold(name))
        current = [m.commune.code for m in matches if m.legacy_name is None]
        assert code in current, (name, matches)
        formerly = {m.commune.code for m in matches if m.legacy_name}
        assert formerly & set(now), (name, former, matches)
        assert current_and_former(matches)
        typed = former.split(" (")[0]  # "Phường Nguyễn Nghiêm", the old district dropped
        if fold(typed) != fold(area.get(code).name if area.get(code) else ""):
            only_former = area.match(f"{typed}, {former.split(' (')[1].rstrip(')')}")
            assert all(m.commune.code != code or m.legacy_name for m in only_former), (
                typed,
                only_former,
            )
