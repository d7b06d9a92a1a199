"""The data packages, pinned in pyproject.toml, still give the codes the area uses.

vietnam-provinces gives the current units and their codes; vietnamadminunits maps the pre-2025
names onto them, read from its private data files; the two are joined by ward code. Registrations
store the codes, so a data release that renumbers or remaps a unit would silently file new
registrations under another commune. Raise the pins only with this test passing (and, if a
code moved, with a migration of the stored codes)."""

from __future__ import annotations

import hashlib
from importlib.metadata import version

from models.admin_units import Area, _legacy_index, _province_communes

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
