"""Administrative units of the served area: current communes and old names mapped to them."""

from __future__ import annotations

import difflib
import functools
import importlib.util
import json
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vietnam_provinces import Province, ProvinceCode, Ward, WardCode

from models.domain import parse_number
from models.text import fold

_NON_WORD = re.compile(r"[\W_]+")
_PARTS = re.compile(r"[,;\n]+")
# Folded commune-type prefixes (abbreviations included) -> canonical folded prefix.
_COMMUNE_PREFIXES = {"xa": "xa", "x": "xa", "phuong": "phuong", "p": "phuong", "tt": "thi tran"}
_COMMUNE_PREFIXES |= {"thi tran": "thi tran", "dac khu": "dac khu", "dk": "dac khu"}
_DISTRICT_PREFIXES = {"tx": "thi xa", "tp": "thanh pho", "h": "huyen", "q": "quan"}


def _exact(text: str) -> str:
    """Like fold() but keeping diacritics: breaks ties between names that fold alike."""
    return " ".join(_NON_WORD.sub(" ", unicodedata.normalize("NFC", text).lower()).split())


def _split_prefix(folded: str, prefixes: Mapping[str, str]) -> tuple[str | None, str]:
    """Split a folded name into (canonical type prefix or None, rest); longest prefix first."""
    for prefix in sorted(prefixes, key=len, reverse=True):
        if folded.startswith(prefix + " "):
            return prefixes[prefix], folded[len(prefix) + 1 :]
    return None, folded


def _key(folded: str) -> str:
    return folded.replace(" ", "")


def _place_key(folded: str) -> str:
    prefix, rest = _split_prefix(folded, _DISTRICT_PREFIXES)
    return _key(f"{prefix} {rest}" if prefix else rest)


@dataclass(frozen=True)
class Commune:
    """A current (post-2025) commune-level unit."""

    code: str
    name: str
    short_name: str
    province_code: str


@dataclass(frozen=True)
class CommuneMatch:
    """A commune named by typed text; legacy_name is the pre-2025 unit's name when matched by it,
    legacy_id its number (Area.legacy_label) and legacy_unit its name alone ("Phường Nguyễn
    Nghiêm")."""

    commune: Commune
    legacy_name: str | None
    legacy_id: int | None = None
    legacy_unit: str | None = None


@dataclass(frozen=True)
class _LegacyUnit:
    label: str  # "Xã Phổ Phong (Thị xã Đức Phổ)"
    name: str  # "Xã Phổ Phong"
    index: int  # its place in _LegacyIndex.units
    short: str  # folded, "pho phong"
    exact: frozenset[str]  # _exact() of its full and short name
    place_keys: frozenset[str]  # its old district's and old province's names
    new_codes: tuple[str, ...]  # the default successor first when the old unit was divided


@dataclass(frozen=True)
class _LegacyIndex:
    by_key: Mapping[str, tuple[_LegacyUnit, ...]]  # spaceless folded full/short/alias names
    place_keys: frozenset[str]  # every old district and old province name usable as a hint
    units: tuple[_LegacyUnit, ...]


def _province(code: str) -> Province:
    try:
        return Province.from_code(ProvinceCode(int(code)))
    except ValueError as exc:
        raise ValueError(f"unknown province code {code!r}") from exc


def _commune(ward: Ward) -> Commune:
    prefix = ward.division_type.value + " "
    has_prefix = ward.name.lower().startswith(prefix)
    short = ward.name[len(prefix) :] if has_prefix else ward.name
    return Commune(f"{int(ward.code):05d}", ward.name, short, f"{int(ward.province_code):02d}")


@functools.lru_cache(maxsize=8)
def _province_communes(province_code: str) -> tuple[Commune, ...]:
    wards = Ward.iter_by_province(_province(province_code).code)
    return tuple(sorted((_commune(w) for w in wards), key=lambda c: (fold(c.short_name), c.code)))


def _data_dir() -> Path:
    # Locate the package without importing it: its __init__ pulls geopy/shapely and a geocoder.
    spec = importlib.util.find_spec("vietnamadminunits")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the vietnamadminunits package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _keywords(raw: Any, *names: str | None) -> set[str]:
    keys = {_key(fold(name)) for name in names if name}
    if isinstance(raw, str):
        keys.update(k for k in json.loads(raw) if isinstance(k, str))
    return keys - {""}


@functools.lru_cache(maxsize=8)
def _legacy_index(province_code: str) -> _LegacyIndex:
    """Pre-2025 communes of the old provinces merged into this one, read from the package data."""
    data = _data_dir()
    with (data / "converter_2025.json").open(encoding="utf-8") as fh:
        converter: dict[str, Any] = json.load(fh)
    with closing(sqlite3.connect(f"{(data / 'dataset.db').as_uri()}?mode=ro", uri=True)) as db:
        db.row_factory = sqlite3.Row
        new_rows = db.execute(
            "SELECT provinceKey, provinceKeywords, wardKey, wardCode FROM admin_units"
            " WHERE provinceCode = ?",
            (f"{int(province_code):02d}",),
        ).fetchall()
        if not new_rows:
            raise ValueError(f"no pre-2025 data for province code {province_code!r}")
        new_province = str(new_rows[0]["provinceKey"])
        old_provinces: list[str] = list(converter["DICT_PROVINCE"][new_province])
        old_rows = db.execute(
            "SELECT provinceKey, provinceKeywords, district, districtShort, districtKey,"
            " districtKeywords, ward, wardShort, wardKey, wardKeywords FROM admin_units_legacy"
            f" WHERE wardKey IS NOT NULL AND provinceKey IN ({','.join('?' * len(old_provinces))})"
            " ORDER BY rowid",
            old_provinces,
        ).fetchall()
    code_of = {str(row["wardKey"]): str(row["wardCode"]) for row in new_rows}
    successors: dict[str, list[str]] = {}
    for new_key, old_keys in converter["DICT_PROVINCE_WARD_NO_DIVIDED"][new_province].items():
        for old_key in old_keys:
            successors.setdefault(old_key, []).append(new_key)
    for old_key, wards in converter["DICT_PROVINCE_WARD_DIVIDED"].get(new_province, {}).items():
        ordered = sorted(wards, key=lambda w: not w["isDefaultNewWard"])
        successors.setdefault(old_key, []).extend(str(w["newWardKey"]) for w in ordered)
    new_province_keys = _keywords(new_rows[0]["provinceKeywords"])
    by_key: dict[str, list[_LegacyUnit]] = {}
    units: list[_LegacyUnit] = []
    for row in old_rows:
        old_key = f"{row['provinceKey']}_{row['districtKey']}_{row['wardKey']}"
        codes = tuple(
            dict.fromkeys(code_of[k] for k in successors.get(old_key, []) if k in code_of)
        )
        if not codes:
            continue
        district, ward = row["district"], row["ward"]
        places = _keywords(row["districtKeywords"], district, row["districtShort"])
        places |= _keywords(row["provinceKeywords"])
        # The new province's name ("Quảng Ngãi") covers every unit: it never narrows a match.
        unit = _LegacyUnit(
            f"{ward} ({district})",
            ward,
            len(units),
            fold(row["wardShort"]),
            frozenset({_exact(ward), _exact(row["wardShort"])}),
            frozenset(places - new_province_keys),
            codes,
        )
        units.append(unit)
        for key in _keywords(row["wardKeywords"], ward, row["wardShort"]):
            by_key.setdefault(key, []).append(unit)
    place_keys = frozenset().union(*(u.place_keys for u in units))
    return _LegacyIndex({k: tuple(v) for k, v in by_key.items()}, place_keys, tuple(units))


class Area:
    """The communes the bot serves: current units of one province, optionally restricted to a list
    of codes, plus an index of the pre-2025 names that map into them."""

    def __init__(
        self, province_code: str, commune_codes: Sequence[str] = (), name: str = ""
    ) -> None:
        """`name`: how people call the served area ("thị xã Đức Phổ cũ"); "" = say its units."""
        self.name = " ".join(name.split())
        province = _province(province_code.strip())
        self.province_code = f"{int(province.code):02d}"
        self.province_name = province.name
        all_communes = _province_communes(self.province_code)
        if commune_codes:
            chosen: dict[str, Commune] = {}
            for raw in commune_codes:
                commune = self._lookup(raw)
                if commune is None:
                    raise ValueError(f"unknown commune code {raw!r}")
                if commune.province_code != self.province_code:
                    raise ValueError(f"commune code {raw!r} is not in province {province_code!r}")
                chosen.setdefault(commune.code, commune)
            self.communes: tuple[Commune, ...] = tuple(chosen.values())
        else:
            self.communes = all_communes
        self._by_code = {c.code: c for c in self.communes}
        self._by_key: dict[str, list[Commune]] = {}
        for c in self.communes:
            for key in {_key(fold(c.name)), _key(fold(c.short_name))}:
                self._by_key.setdefault(key, []).append(c)
        self._province_by_key: dict[str, list[Commune]] = {}
        for c in all_communes:
            for key in {_key(fold(c.name)), _key(fold(c.short_name))}:
                self._province_by_key.setdefault(key, []).append(c)
        self._province_keys = set(self._province_by_key)
        self._province_by_code = {c.code: c for c in all_communes}

    @staticmethod
    def _lookup(code: str) -> Commune | None:
        number = parse_number(code, max_digits=5)
        if number is None:
            return None
        try:
            return _commune(Ward.from_code(WardCode(number)))
        except ValueError:
            return None

    def get(self, code: str) -> Commune | None:
        """The area's commune with this code, or None."""
        code = code.strip()
        return self._by_code.get(code.zfill(5)) if parse_number(code, 5) is not None else None

    def match(self, text: str, address: str = "") -> list[CommuneMatch]:
        """Communes the typed text names: a current name of the area wins; otherwise the current
        units of the area that a pre-2025 name of the province was merged into. Several matches
        when the name is ambiguous (names differing only in diacritics, "Ba To": Ba Tô, Ba Tơ; an
        old name used in two districts; an old unit divided between new ones); the spelling with
        the typed diacritics is preferred. Comma-separated parts are tried in order ("Thôn Tân
        Phong, xã Phổ Phong, Đức Phổ"); the first part naming any unit of the province decides,
        and the other parts, when they name an old district or old province, narrow it down.

        A name that is a current unit and also a pre-2025 unit now inside another current unit
        ("Nguyễn Nghiêm": today's Xã Nguyễn Nghiêm, and the former Phường Nguyễn Nghiêm now in
        Phường Đức Phổ) gives both, the current one first, unless a type word decides it: typed
        with the name ("phường Nguyễn Nghiêm"), or used with it in `address`."""
        parts = [p for p in _PARTS.split(text) if fold(p)]
        types: dict[str, str] = {}
        for typed_part in [*parts, *_PARTS.split(address)]:
            kind, name = _split_prefix(fold(typed_part), _COMMUNE_PREFIXES)
            if kind is not None:
                types.setdefault(_key(name), kind)
        for i, part in enumerate(parts):
            found = self._match_part(part, [fold(h) for h in parts[:i] + parts[i + 1 :]], types)
            if found is not None:
                return found
        return []

    def _match_part(
        self, part: str, hints: list[str], types: Mapping[str, str]
    ) -> list[CommuneMatch] | None:
        """Matches of one part; None when it names no current or old unit of the province."""
        prefix, rest = _split_prefix(fold(part), _COMMUNE_PREFIXES)
        prefix = prefix or types.get(_key(rest))
        keys = [_key(f"{prefix} {rest}"), _key(rest)] if prefix else [_key(rest)]
        exact_words = _exact(part).split()
        typed = {" ".join(exact_words), " ".join(exact_words[-len(rest.split()) :])}
        named = False
        for key in keys:
            current = self._by_key.get(key)
            if current:
                names = {c.code: {_exact(c.name), _exact(c.short_name)} for c in current}
                best = [c for c in current if names[c.code] & typed]
                former = [
                    u
                    for u in _legacy_index(self.province_code).by_key.get(key, ())
                    if not best or u.exact & typed
                ]
                best = best or current
                here = [CommuneMatch(c, None) for c in best]
                codes = {c.code for c in best}
                elsewhere = [
                    m
                    for m in self._successors(
                        [u for u in former if not codes & set(u.new_codes)], hints
                    )
                    if m.commune.code not in codes
                ]
                return here + elsewhere
            named = named or key in self._province_keys
            units = _legacy_index(self.province_code).by_key.get(key, ())
            if units:
                named = True
                found = self._successors([u for u in units if u.exact & typed] or units, hints)
                if found:
                    return found
        return [] if named else None

    def _successors(self, units: Iterable[_LegacyUnit], hints: list[str]) -> list[CommuneMatch]:
        place_keys = _legacy_index(self.province_code).place_keys
        for hint in {_place_key(h) for h in hints} & place_keys:
            units = [u for u in units if hint in u.place_keys]
        found: dict[str, CommuneMatch] = {}
        for unit in units:
            for code in unit.new_codes:
                commune = self._by_code.get(code)
                if commune is not None and code not in found:
                    found[code] = CommuneMatch(commune, unit.label, unit.index, unit.name)
        return list(found.values())

    def legacy_label(self, legacy_id: int) -> str | None:
        """The pre-2025 unit of CommuneMatch.legacy_id: "Xã Phổ Phong (Thị xã Đức Phổ)"."""
        units = _legacy_index(self.province_code).units
        return units[legacy_id].label if 0 <= legacy_id < len(units) else None

    def outside(self, text: str) -> list[Commune]:
        """Current units of the province, not served here, that the text names (by their name or
        a pre-2025 name): "not served here" rather than "not found"."""
        index = _legacy_index(self.province_code)
        found: dict[str, Commune] = {}
        for part in _PARTS.split(text):
            prefix, rest = _split_prefix(fold(part), _COMMUNE_PREFIXES)
            keys = [_key(f"{prefix} {rest}"), _key(rest)] if prefix else [_key(rest)]
            typed = {_exact(part), _exact(rest)}
            for key in keys:
                current = list(self._province_by_key.get(key, ()))
                former = list(index.by_key.get(key, ()))
                # Spelled as typed wins over names that only fold alike ("Ba Tơ", "Ba Tô").
                spelled = [c for c in current if {_exact(c.name), _exact(c.short_name)} & typed]
                spelled_former = [u for u in former if u.exact & typed]
                if spelled or spelled_former:
                    current, former = spelled, spelled_former
                communes = current + [
                    self._province_by_code[code] for unit in former for code in unit.new_codes
                ]
                for commune in communes:
                    if commune.code not in self._by_code:
                        found.setdefault(commune.code, commune)
                if found:
                    return list(found.values())
        return []
    def former_communes(self, codes: Iterable[str]) -> list[str]:
        """The pre-2025 units ("Xã Phổ An (Thị xã Đức Phổ)") merged, wholly or in part, into
        the communes of `codes`: what the province's reports before the reorganisation count."""
        wanted = set(codes)
        units = _legacy_index(self.province_code).units
        return [unit.label for unit in units if wanted.intersection(unit.new_codes)]

    def former_commune(self, code: str, named: Iterable[str | None]) -> str | None:
        """The pre-2025 unit a place of the current commune `code` lay in: the first of `named`
        (a former unit as stored with a registration, or an address) naming one merged into
        `code`; else the only one merged into it; else None (it cannot be told)."""
        merged = [u.label for u in _legacy_index(self.province_code).units if code in u.new_codes]
        for text in named:
            if not text:
                continue
            if text in merged:
                return text
            for found in self.match(text):
                if found.commune.code == code and found.legacy_name in merged:
                    return found.legacy_name
        return merged[0] if len(merged) == 1 else None

    def suggest(self, text: str, limit: int = 3) -> list[Commune]:
        """Closest communes of the area by folded current or pre-2025 name, for "did you mean"."""
        queries = [_split_prefix(p, _COMMUNE_PREFIXES)[1] for p in map(fold, _PARTS.split(text))]
        queries = [q for q in queries if q] or [fold(text)]
        by_code = self._by_code
        # (folded name, commune, 1 for a current name: it wins a tie with an old one)
        names = [(fold(c.short_name), c, 1) for c in self.communes]
        for unit in _legacy_index(self.province_code).units:
            names.extend((unit.short, by_code[c], 0) for c in unit.new_codes if c in by_code)
        best: dict[str, tuple[float, int]] = {}
        matcher = difflib.SequenceMatcher(autojunk=False)
        for query in queries:
            matcher.set_seq2(query)
            for name, commune, current in names:
                matcher.set_seq1(name)
                score = (matcher.ratio(), current)
                best[commune.code] = max(best.get(commune.code, score), score)
        order = {c.code: i for i, c in enumerate(self.communes)}
        ranked = sorted(best, key=lambda code: (-best[code][0], -best[code][1], order[code]))
        return [by_code[code] for code in ranked[: max(limit, 0)]]
