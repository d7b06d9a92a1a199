"""The OCOP dossier checklist (handlers/dossier_data/checklist.toml, or an office's own file):
which items a registration kind needs, and how complete a registration's dossier is."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from handlers.i18n import current_language
from models.domain import RegistrationKind
from models.text import fold

SHIPPED = Path(__file__).parent / "dossier_data" / "checklist.toml"
KEY = re.compile(r"[a-z0-9]{1,12}")


class ChecklistError(ValueError):
    """The checklist file is malformed; the message says where."""


@dataclass(frozen=True)
class Item:
    key: str
    labels: dict[str, str]  # language -> label; "vi" always present
    words: tuple[str, ...]  # folded caption words that name the item

    def label(self) -> str:
        return self.labels.get(current_language.get()) or self.labels["vi"]


@dataclass(frozen=True)
class KindItems:
    mandatory: tuple[Item, ...]
    optional: tuple[Item, ...]

    @property
    def all(self) -> tuple[Item, ...]:
        return self.mandatory + self.optional


@dataclass(frozen=True)
class Completeness:
    """How many mandatory items have at least one file, and which are missing."""

    done: int
    total: int
    missing: tuple[Item, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


@dataclass(frozen=True)
class Checklist:
    items: dict[str, Item]
    kinds: dict[RegistrationKind, KindItems]

    def for_kind(self, kind: RegistrationKind) -> KindItems:
        return self.kinds[kind]

    def item(self, key: str) -> Item | None:
        return self.items.get(key)

    def completeness(self, kind: RegistrationKind, present: Iterable[str]) -> Completeness:
        have = set(present)
        mandatory = self.kinds[kind].mandatory
        missing = tuple(item for item in mandatory if item.key not in have)
        return Completeness(len(mandatory) - len(missing), len(mandatory), missing)

    def match_caption(self, kind: RegistrationKind, caption: str | None) -> Item | None:
        """The item a caption names ("giay phep kinh doanh", "ảnh sản phẩm"): the longest of
        the kind's item words found as whole words; None when no word matches."""
        if not caption:
            return None
        text = f" {' '.join(re.findall(r'[a-z0-9]+', fold(caption)))} "
        best: tuple[int, Item] | None = None
        for item in self.kinds[kind].all:
            for word in item.words:
                if f" {word} " in text and (best is None or len(word) > best[0]):
                    best = (len(word), item)
        return best[1] if best else None


def _item(raw: object, where: str) -> Item:
    if not isinstance(raw, dict):
        raise ChecklistError(f"{where}: an item must be a table")
    key, vi = raw.get("key"), raw.get("vi")
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise ChecklistError(f"{where}: key must be 1-12 lowercase letters or digits")
    if not isinstance(vi, str) or not vi.strip():
        raise ChecklistError(f"{where} ({key}): the Vietnamese label 'vi' is missing")
    labels = {"vi": vi.strip()}
    if isinstance(raw.get("en"), str) and raw["en"].strip():
        labels["en"] = raw["en"].strip()
    words = raw.get("words", [])
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ChecklistError(f"{where} ({key}): words must be a list of strings")
    folded = tuple(" ".join(re.findall(r"[a-z0-9]+", fold(w))) for w in words)
    return Item(key, labels, tuple(w for w in folded if w))


def parse_checklist(text: str) -> Checklist:
    """A checklist from the TOML text; raises ChecklistError saying what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ChecklistError(f"not valid TOML: {error}") from error
    items: dict[str, Item] = {}
    for number, raw in enumerate(data.get("items", []), start=1):
        item = _item(raw, f"item {number}")
        if item.key in items:
            raise ChecklistError(f"item {number}: key {item.key!r} declared twice")
        items[item.key] = item
    kinds_raw = data.get("kinds", {})
    kinds: dict[RegistrationKind, KindItems] = {}
    for kind in RegistrationKind:
        raw = kinds_raw.get(kind.value)
        if not isinstance(raw, dict):
            raise ChecklistError(f"kinds.{kind.value} is missing")
        lists = []
        for part in ("mandatory", "optional"):
            keys = raw.get(part, [])
            unknown = [key for key in keys if key not in items]
            if unknown:
                raise ChecklistError(f"kinds.{kind.value}.{part}: undeclared items {unknown}")
            lists.append(tuple(items[key] for key in keys))
        if not lists[0]:
            raise ChecklistError(f"kinds.{kind.value}: no mandatory item")
        kinds[kind] = KindItems(lists[0], lists[1])
    extra = set(kinds_raw) - {kind.value for kind in RegistrationKind}
    if extra:
        raise ChecklistError(f"unknown kinds {sorted(extra)}")
    return Checklist(items, kinds)


@cache
def load_checklist(path: str = "") -> Checklist:
    """The checklist of OCOP_DOSSIER_CHECKLIST (a path), or the shipped one when empty."""
    where = Path(path) if path else SHIPPED
    try:
        return parse_checklist(where.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ChecklistError) as error:
        raise ChecklistError(f"OCOP_DOSSIER_CHECKLIST {where}: {error}") from error
