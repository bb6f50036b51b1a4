"""Documents -> passages: blocks of whole paragraphs under one heading, with a little overlap.

A passage is what a specialist's prompt quotes and an answer cites, so it must stand on its
own (its heading travels in its title) and point back to exactly where it came from: the
source path and the 1-based, inclusive line span. Paragraphs are never cut unless a single one
is longer than a passage; the last paragraph of a passage opens the next one, so a fact split
across a boundary is whole in one of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

from pz2.knowledge.documents import Document


@dataclass(frozen=True)
class Chunk:
    id: str
    path: str
    title: str
    line_start: int
    line_end: int
    text: str
    collection: str
    split: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Block:
    start: int   # 0-based line indexes, end exclusive
    end: int
    text: str
    heading: str | None


def _blocks(doc: Document) -> list[_Block]:
    """Paragraphs (runs of non-blank lines); in Markdown a heading line starts a new section."""
    lines = doc.text.splitlines()
    blocks: list[_Block] = []
    heading: str | None = None
    start: int | None = None

    def close(end: int) -> None:
        nonlocal start
        if start is not None:
            blocks.append(_Block(start, end, "\n".join(lines[start:end]).strip(), heading))
            start = None

    for i, line in enumerate(lines):
        if doc.markdown and line.startswith("#") and line.lstrip("#").startswith(" "):
            close(i)
            heading = line.lstrip("#").strip()
            start = i
            continue
        if not line.strip():
            close(i)
        elif start is None:
            start = i
    close(len(lines))
    return [b for b in blocks if b.text]


def _split_long(block: _Block, max_chars: int) -> list[_Block]:
    """A paragraph longer than a passage, cut at line boundaries (or hard, for one huge line)."""
    lines = block.text.splitlines()
    out: list[_Block] = []
    cur: list[str] = []
    first = block.start
    for offset, line in enumerate(lines):
        while len(line) > max_chars:
            if cur:
                out.append(_Block(first, block.start + offset, "\n".join(cur), block.heading))
                cur = []
            out.append(_Block(block.start + offset, block.start + offset + 1, line[:max_chars], block.heading))
            line = line[max_chars:]
            first = block.start + offset
        if cur and sum(len(c) + 1 for c in cur) + len(line) > max_chars:
            out.append(_Block(first, block.start + offset, "\n".join(cur), block.heading))
            cur, first = [], block.start + offset
        if not cur:
            first = block.start + offset
        cur.append(line)
    if cur:
        out.append(_Block(first, block.start + len(lines), "\n".join(cur), block.heading))
    return out


def chunk_document(doc: Document, max_chars: int, overlap: bool = True) -> list[Chunk]:
    blocks = [piece for b in _blocks(doc) for piece in (_split_long(b, max_chars) if len(b.text) > max_chars else [b])]
    chunks: list[Chunk] = []
    group: list[_Block] = []

    def emit() -> None:
        text = "\n\n".join(b.text for b in group)
        heading = group[0].heading
        title = doc.title if not heading or heading == doc.title else f"{doc.title} › {heading}"
        start, end = group[0].start + 1, group[-1].end
        digest = hashlib.sha256(f"{doc.path}\0{start}\0{end}\0{text}".encode()).hexdigest()[:16]
        chunks.append(Chunk(digest, doc.path, title, start, end, text, doc.collection, doc.split))

    for block in blocks:
        size = sum(len(b.text) + 2 for b in group) + len(block.text)
        if group and (size > max_chars or block.heading != group[0].heading):
            emit()
            keep = group[-1]
            same_section = keep.heading == block.heading
            group = [keep] if overlap and same_section and len(keep.text) + len(block.text) + 2 <= max_chars else []
        group.append(block)
    if group:
        emit()
    return chunks
