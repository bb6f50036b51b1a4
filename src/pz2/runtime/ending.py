"""Where an answer may end: after a complete sentence or list item, never mid-word.

An answer that runs out of tokens (`finish_reason: length`) is cut back to its last complete sentence or
list item, so a person never reads "5. Solid tools (Union, Subtract, Inter". While the answer streams,
the unfinished tail is held back (as the stop-string scanner holds back a possible stop string) and goes
out once a boundary closes it, or with the answer's natural end; so a streamed and a returned answer are
the same text.
"""

from __future__ import annotations

import re

# a sentence ends at . ! ? … (or their CJK forms), with any closing quotes or brackets, before whitespace; a
# list item or line at a newline. "1." at the start of a line is a list number, not a sentence's end, and
# neither is a one-letter abbreviation ("e.g.", "i.e.") nor a version or decimal number ("3.11").
_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’)\]]*(?=\s)")
_LIST_NUMBER = re.compile(r"(?:^|\n)[ \t]*(?:\d{1,3}|[A-Za-z])[.)]$")
_ABBREVIATION = re.compile(r"(?:\b[A-Za-z]\.){1,3}$")


def last_boundary(text: str) -> int:
    """Length of the longest prefix of `text` that ends a sentence or a line (0: none does)."""
    best = text.rfind("\n") + 1
    for m in _SENTENCE_END.finditer(text, best):
        head = text[: m.end()]
        if not _LIST_NUMBER.search(head) and not _ABBREVIATION.search(head.rstrip("\"'”’)]")):
            best = m.end()
    return best


def complete_part(text: str) -> str:
    """What of a cut answer a person should read: up to its last complete sentence or list item; without
    one, up to its last whole word."""
    end = last_boundary(text)
    if text[:end].strip():
        return text[:end].rstrip()
    words = text.rstrip()
    cut = max(words.rfind(" "), words.rfind("\n"))
    return words[:cut].rstrip() if cut > 0 else words   # one unbroken run (a long command): nothing to cut at


def ends_mid_sentence(text: str) -> bool:
    """The text stops inside a sentence: no end punctuation, line end or closing of its own at its end."""
    text = text.rstrip()
    return bool(text) and last_boundary(text + " ") < len(text)


class SentenceHold:
    """Releases streamed text up to its last boundary and holds back the unfinished tail, which `finish`
    releases (the answer ended by itself) or drops back to `complete_part` (it ran out of tokens)."""

    def __init__(self) -> None:
        self.text = ""      # everything pushed
        self.sent = 0       # characters of it released

    def push(self, piece: str) -> str:
        self.text += piece
        return self._release(max(self.sent, last_boundary(self.text)))

    def finish(self, cut: bool) -> str:
        """The rest to release: all of it, or, when the answer was `cut`, its complete part (what was already
        released always stays: it ended at a boundary)."""
        if cut:
            kept = complete_part(self.text)
            self.text = kept if len(kept) >= self.sent else self.text[: self.sent]
        return self._release(len(self.text))

    def _release(self, upto: int) -> str:
        piece, self.sent = self.text[self.sent:upto], max(self.sent, upto)
        return piece
