"""Splitting long replies on line boundaries to fit a channel's message limit."""

from __future__ import annotations


def split_message(text: str, limit: int) -> list[str]:
    """Chunks of at most `limit` characters, cut at line ends (a longer line is cut hard)."""
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current or not chunks:
        chunks.append(current)
    return chunks
