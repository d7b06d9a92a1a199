"""Tests for the area's current communes and the mapping of pre-2025 names onto them."""

import warnings

import pytest
from vietnam_provinces import ProvinceCode, Ward

from models.admin_units import Area, Commune, CommuneMatch
from models.text import fold

DEFAULT_CODES = ["21439", "21451", "21457", "21472", "21478"]


@pytest.fixture(scope="module")
def area() -> Area:
    return Area("51", DEFAULT_CODES)


@pytest.fixture(scope="module")
def province() -> Area:
    return Area("51")


def codes(matches: list[CommuneMatch]) -> list[str]:
    return [m.commune.code for m in matches]


def test_fold() -> None:
    assert fold("  Xã  Phổ-Phong,  Đức Phổ ") == "xa pho phong duc pho"
    assert fold("ĐĂK BLÀ") == "dak bla"
    assert fold("Hoà") == fold("Hòa") == "hoa"
    assert fold("P.Phổ Văn") == "p pho van"


def test_default_area(area: Area) -> None:
    assert area.province_name == "Quảng Ngãi"
    assert [c.code for c in area.communes] == DEFAULT_CODES
    assert area.get("21457") == Commune("21457", "Xã Nguyễn Nghiêm", "Nguyễn Nghiêm", "51")
    assert area.get("21025") is None
    assert area.get("abc") is None


@pytest.mark.parametrize(
    ("text", "code", "legacy"),
    [
        ("Phổ Phong", "21457", "Xã Phổ Phong (Thị xã Đức Phổ)"),
        ("pho phong", "21457", "Xã Phổ Phong (Thị xã Đức Phổ)"),
        ("xã Phổ Phong", "21457", "Xã Phổ Phong (Thị xã Đức Phổ)"),
        ("X. PHỔ PHONG", "21457", "Xã Phổ Phong (Thị xã Đức Phổ)"),
        ("pho thuan", "21451", "Xã Phổ Thuận (Thị xã Đức Phổ)"),
        ("xã Phổ Thuận", "21451", "Xã Phổ Thuận (Thị xã Đức Phổ)"),
        ("P.Phổ Văn", "21451", "Phường Phổ Văn (Thị xã Đức Phổ)"),
        ("xã Phổ Văn", "21451", "Phường Phổ Văn (Thị xã Đức Phổ)"),  # its name before 2020
        ("Phổ Thạnh", "21478", "Phường Phổ Thạnh (Thị xã Đức Phổ)"),
        ("Phổ Châu", "21478", "Xã Phổ Châu (Thị xã Đức Phổ)"),
        ("phổ cường", "21472", "Xã Phổ Cường (Thị xã Đức Phổ)"),
        ("phường Nguyễn Nghiêm", "21439", "Phường Nguyễn Nghiêm (Thị xã Đức Phổ)"),
        ("Phổ Phong, Đức Phổ", "21457", "Xã Phổ Phong (Thị xã Đức Phổ)"),
        ("xã Phổ Phong, thị xã Đức Phổ, tỉnh Quảng Ngãi", "21457", "Xã Phổ Phong (Thị xã Đức Phổ)"),
        ("Phổ Phong, TX Đức Phổ, Quảng Ngãi", "21457", "Xã Phổ Phong (Thị xã Đức Phổ)"),
        ("Thôn Tân Phong, xã Phổ Phong", "21457", "Xã Phổ Phong (Thị xã Đức Phổ)"),
        ("Sa Huynh", "21478", None),
        ("phường Sa Huỳnh", "21478", None),
        ("duc pho", "21439", None),
        ("P. Đức Phổ", "21439", None),
        ("xa nguyen nghiem", "21457", None),  # the type word decides: today's xã
        ("TRÀ CÂU", "21451", None),
        ("phường Khánh Cường", "21472", None),  # wrong type prefix, still the current name
    ],
)
def test_match_default_area(area: Area, text: str, code: str, legacy: str | None) -> None:
    [found] = area.match(text)
    assert (found.commune.code, found.legacy_name) == (code, legacy)


@pytest.mark.parametrize(
    "text",
    [
        "Hà Nội",
        "Cẩm Thành",  # current commune of the province, outside the area
        "Nghĩa Lộ",
        "Trần Hưng Đạo",  # old wards of Quảng Ngãi city and Kon Tum city, both outside the area
        "Phổ Phong, Bình Sơn",  # the old district contradicts
        "Phổ Phong, Kon Tum",
        "",
        " , ; ",
        "xyz",
    ],
)
def test_no_match_in_default_area(area: Area, text: str) -> None:
    assert area.match(text) == []


def test_whole_province(province: Area) -> None:
    wards = list(Ward.iter_by_province(ProvinceCode.P_51))
    assert len(province.communes) == len(wards) == 96
    assert {c.code for c in province.communes} == {f"{int(w.code):05d}" for w in wards}
    names = [fold(c.short_name) for c in province.communes]
    assert names == sorted(names)
    assert codes(province.match("Cẩm Thành")) == ["21025"]
    assert codes(province.match("Phổ Phong")) == ["21457"]
    assert codes(province.match("Lý Sơn")) == ["21548"]
    # Unaccented, both today's Phường Đăk BLa and the former Xã Đăk Blà (now Xã Đăk Rơ Wa)
    # fit; typed with its accents, only one does.
    assert codes(province.match("Dak Bla")) == ["23302", "23332"]
    assert codes(province.match("Đăk BLa")) == ["23302"]


def test_a_current_name_that_is_also_a_former_unit_elsewhere_gives_both(area: Area) -> None:
    both = area.match("Nguyễn Nghiêm")
    assert [(m.commune.code, m.legacy_name) for m in both] == [
        ("21457", None),
        ("21439", "Phường Nguyễn Nghiêm (Thị xã Đức Phổ)"),
    ]
    # The type word decides, typed with the name or in the address.
    assert codes(area.match("phường Nguyễn Nghiêm")) == ["21439"]
    assert codes(area.match("xã Nguyễn Nghiêm")) == ["21457"]
    assert codes(area.match("Nguyễn Nghiêm", "Thôn 2, phường Nguyễn Nghiêm")) == ["21439"]
    assert codes(area.match("Nguyen Nghiem", "Thôn 2, Xã Nguyễn Nghiêm")) == ["21457"]


def test_ambiguous_old_names(province: Area) -> None:
    both = province.match("Trần Hưng Đạo")
    assert {(m.commune.code, m.legacy_name) for m in both} == {
        ("21025", "Phường Trần Hưng Đạo (Thành phố Quảng Ngãi)"),
        ("23302", "Phường Trần Hưng Đạo (Thành phố Kon Tum)"),
    }
    assert codes(province.match("Trần Hưng Đạo, Kon Tum")) == ["23302"]
    assert codes(province.match("Trần Hưng Đạo, TP Quảng Ngãi")) == ["21025"]
    assert len(province.match("Trần Hưng Đạo, Quảng Ngãi")) == 2  # also the new province's name
    assert set(codes(province.match("phường Nguyễn Nghiêm"))) == {"21025", "21439"}
    assert codes(province.match("phường Nguyễn Nghiêm, Đức Phổ")) == ["21439"]


def test_names_differing_only_in_diacritics(province: Area) -> None:
    assert {m.commune.name for m in province.match("Ba To")} == {"Xã Ba Tô", "Xã Ba Tơ"}
    assert [m.commune.name for m in province.match("Ba Tơ")] == ["Xã Ba Tơ"]
    assert [m.commune.name for m in province.match("x. BA TÔ")] == ["Xã Ba Tô"]
    [thanh] = province.match("Xã Bình Thanh, Bình Sơn")
    [thanh_dot] = province.match("Bình Thạnh, huyện Bình Sơn")
    assert thanh.legacy_name == "Xã Bình Thanh (Huyện Bình Sơn)"
    assert thanh_dot.legacy_name == "Xã Bình Thạnh (Huyện Bình Sơn)"
    assert len(province.match("binh thanh, binh son")) == 2


def test_divided_old_commune_returns_every_successor(province: Area) -> None:
    found = province.match("Trà Bùi")
    assert codes(found) == ["21136", "21157"]  # the package's default successor first
    assert {m.legacy_name for m in found} == {"Xã Trà Bùi (Huyện Trà Bồng)"}
    assert codes(Area("51", ["21157"]).match("tra bui")) == ["21157"]


def test_suggest(area: Area, province: Area) -> None:
    assert Commune("21457", "Xã Nguyễn Nghiêm", "Nguyễn Nghiêm", "51") in area.suggest("Pho Phog")
    assert area.suggest("Pho Phog")[0].code == "21457"
    assert area.suggest("sa hyunh")[0].code == "21478"
    assert "21457" in [c.code for c in province.suggest("xã Pho Phog")]
    assert len(area.suggest("zzz")) == 3
    assert len(area.suggest("", limit=10)) == 5
    assert area.suggest("Nguyen Ngiem", limit=1)[0].code == "21457"


@pytest.mark.parametrize(
    ("province_code", "communes", "bad"),
    [
        ("99", (), "'99'"),
        ("xx", (), "'xx'"),
        ("51", ["21457", "99999"], "'99999'"),
        ("51", ["21457", "abc"], "'abc'"),
        ("51", ["00070"], "'00070'"),  # Phường Hoàn Kiếm, Hà Nội
    ],
)
def test_bad_codes_raise(province_code: str, communes: list[str], bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        Area(province_code, communes)


def test_configured_order_and_duplicates() -> None:
    area = Area("51", ["21478", "21457", "21478"])
    assert [c.code for c in area.communes] == ["21478", "21457"]


def test_legacy_index_agrees_with_package_converter(
    province: Area, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pre-2025 commune of old Quảng Ngãi and Kon Tum maps where convert_address puts it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from vietnamadminunits import convert_address
        from vietnamadminunits.converter import converter_2025
        from vietnamadminunits.database import query

    def no_geocoder(address: str) -> None:
        raise AssertionError(f"network geocoder called for {address!r}")

    monkeypatch.setattr(converter_2025, "get_geo_location", no_geocoder)
    rows = query(
        "SELECT ward, district, province FROM admin_units_legacy"
        " WHERE provinceCode IN ('51', '62') AND ward IS NOT NULL"
    )
    assert len(rows) > 250
    for row in rows:
        expected = convert_address(f"{row['ward']}, {row['district']}, {row['province']}")
        label = f"{row['ward']} ({row['district']})"
        found = province.match(f"{row['ward']}, {row['district']}")
        assert found, label
        if found[0].legacy_name is not None:  # an old name now also a current one resolves to it
            assert found[0].legacy_name == label
            assert found[0].commune.code == expected.ward_code, label


def test_units_of_the_province_outside_the_area_are_told_apart_from_unknown_names(
    area: Area,
) -> None:
    assert [c.name for c in area.outside("Lý Sơn")] == ["Đặc khu Lý Sơn"]
    assert [c.name for c in area.outside("Ba Tơ")] == ["Xã Ba Tơ"]  # spelled as typed
    assert {c.name for c in area.outside("ba to")} == {"Xã Ba Tơ", "Xã Ba Tô"}
    # Former units of other districts, by their old name: the units they are in now.
    assert {c.code for c in area.outside("Phường Trần Hưng Đạo")} == {"21025", "23302"}
    assert area.outside("Phổ Phong") == []  # served here
    assert area.outside("Hà Lội") == []  # no such place
