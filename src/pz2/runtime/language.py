"""Which language a message is in, as far as routing needs to know: how much of it the English-only
base and encoder can read, and the assistant's own short replies (the expert-mode offer, the honest
reply to text it cannot read) in the message's script where pz2 has them."""

from __future__ import annotations

import re
import unicodedata

from pz2.data.glossary import gloss

OFFER_TEXT = {"en": "Would you like a more expert answer?", "ko": "더 전문적인 답변이 필요하시나요?"}
UNREADABLE_TEXT = {
    "en": "I can only read English well. Could you ask your question in English?",
    "ko": "저는 영어로 된 질문에 가장 잘 답할 수 있어요. 질문을 영어로 다시 해 주시겠어요?",
}
ENGLISH_NOTICE = {"ko": "(이 모델은 영어만 읽고 쓸 수 있어 영어로 답했어요.)"}
LANGUAGE_NAMES = {"ko": "Korean"}
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9+#.'-]*")


def language(text: str) -> str:
    return "ko" if _HANGUL.search(text) else "en"


def offer_text(question: str) -> str:
    """The expert-mode offer in the question's language."""
    return OFFER_TEXT[language(question)]


def unreadable_reply(question: str) -> str:
    """The honest reply to a question the English-only base cannot read, in its script where pz2 has one."""
    return UNREADABLE_TEXT[language(question)]


def english_coverage(text: str) -> float:
    """Share of the text's letters in the Latin script: the part the English encoder can read.

    all-MiniLM-L6-v2 learned English; Hangul or Han characters reach it as jamo or [UNK] pieces,
    and the fine-tuned head still answers with 99% confidence. That share of the input carries no
    evidence, so `predict` gives it uniform probability. Text without letters (emoji, "?!") has
    coverage 0.
    """
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    latin = sum(1 for c in letters if c.isascii() or unicodedata.name(c, "").startswith("LATIN"))
    return latin / len(letters)


def english_rendering(text: str) -> str | None:
    """What an English-only model can read of a mixed question: its English words and the English of its
    glossary words ("SketchUp에서 복잡한 곡면 모델링하는 고급 기법을 알려줘" -> "SketchUp complex curved surfaces
    modeling advanced techniques?"); None for text without Hangul or with nothing to render."""
    if not _HANGUL.search(text):
        return None
    words = list(dict.fromkeys(_LATIN_WORD.findall(text) + gloss(text).split()))
    return f"{' '.join(words)}?" if words else None


def reply_language(question: str) -> str | None:
    """The language a base that writes it answers this question in, named for the prompt, when it is not
    English (the passages' language): a question mostly in another script."""
    if english_coverage(question) >= 0.5:
        return None
    return LANGUAGE_NAMES.get(language(question))


def english_notice(question: str) -> str | None:
    """The one line that says, in the question's language, why the answer is in English."""
    return ENGLISH_NOTICE.get(language(question))
