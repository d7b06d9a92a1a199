"""Splitting long replies on line boundaries to fit a channel's message limit."""

from __future__ import annotations

import re

# In HTML text a tag and an entity are atoms: cutting through `&amp;` or `<b>` makes the rest
# of the message unparseable, and Telegram refuses all of it.
_HTML_ATOM = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)[^<>]*>|&(?:#\d+|#x[0-9a-fA-F]+|\w+);")


def split_message(text: str, limit: int, html: bool = True) -> list[str]:
    """Chunks of at most `limit` characters, cut at line ends (a longer line is cut hard).

    With `html`, a cut never falls inside a tag or an entity, and tags still open at a cut are
    closed at the end of the chunk and opened again at the start of the next, so every chunk
    is valid on its own."""
    chunks: list[str] = []
    reopen: list[tuple[str, str]] = []  # (name, opening tag) open where the previous chunk ended
    rest = text
    while True:
        prefix = "".join(opening for _name, opening in reopen)
        if len(prefix) + len(rest) <= limit:
            if (prefix + rest).strip() or not chunks:
                chunks.append(prefix + rest)
            return chunks
        cut, skip, reopen = _cut(rest, limit - len(prefix), reopen, html)
        piece = prefix + rest[:cut] + _closing(reopen)
        if piece.strip():
            chunks.append(piece)
        rest = rest[cut + skip :]


def _closing(tags: list[tuple[str, str]]) -> str:
    return "".join(f"</{name}>" for name, _opening in reversed(tags))


def _cut(
    text: str, budget: int, stack: list[tuple[str, str]], html: bool
) -> tuple[int, int, list[tuple[str, str]]]:
    """Where to end a chunk of `text` that has `budget` characters: (end, characters skipped
    after it, tags open there). The last line end that fits wins; else the last atom boundary."""
    stack = list(stack)
    best: tuple[int, int, list[tuple[str, str]]] | None = None
    best_line: tuple[int, int, list[tuple[str, str]]] | None = None
    position = 0
    atoms = _HTML_ATOM.finditer(text) if html else iter(())
    atom = next(atoms, None)
    while position < len(text):
        if position + len(_closing(stack)) > budget:
            break
        best = (position, 0, list(stack))
        if text[position] == "\n":
            best_line = (position, 1, list(stack))
        if atom is not None and atom.start() == position:
            end = atom.end()
            if atom.group(2):
                name = atom.group(2).lower()
                if atom.group(1):
                    if stack and stack[-1][0] == name:
                        stack.pop()
                else:
                    stack.append((name, atom.group(0)))
            atom = next(atoms, None)
        else:
            end = position + 1
        if end + len(_closing(stack)) > budget:
            break
        position = end
    else:
        best = (position, 0, list(stack))
    chosen = best_line if best_line is not None and best_line[0] > 0 else best
    if chosen is None or chosen[0] == 0:
        # Not even one atom fits after the reopened tags: cut plain characters (never empty).
        return max(1, budget), 0, []
    return chosen
