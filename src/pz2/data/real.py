"""Human-written text from packaged corpora, converted to the seed's formats.

Templates alone teach templates. These rows let the classifier and the chat model see how
people really write. Sources (both installed from PyPI, read from site-packages, no network):
- chitchat-dataset (MIT): open-domain chit-chat between people -> general;
- chatterbot-corpus (BSD): curated question/answer pairs, mapped per file below.
Each row keeps `source` = "<package>:<file or conversation id>". A row's split comes from a hash
of that id, so it never moves between runs or seeds and the test rows stay out of training.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pz2.data.generate import Example
from pz2.data.jsonl import read_jsonl
from pz2.data.schema import LABEL_IDS, LABELS, SPLITS, normalize
from pz2.errors import DatasetError
from pz2.fileio import atomic_write_jsonl

logger = logging.getLogger(__name__)

# chatterbot-corpus files whose questions clearly belong to one category; the rest
# (gossip, movies, politics ...) are bot-persona banter we leave out rather than mislabel.
CHATTERBOT_CATEGORIES: dict[str, str] = {
    "trivia": "qna", "history": "qna", "science": "qna", "computers": "qna", "ai": "qna",
    "tech_support": "technical",
    "greetings": "general", "emotion": "general", "conversations": "general", "humor": "general",
    "botprofile": "general", "psychology": "general",
}
# Hand-written by the pz2 authors, never generated or trained on: slang, typos, rambling and
# one-word turns, 40 per category, for the classifier's evaluation (real corpora lack technical text).
CHALLENGE_FILE = Path(__file__).parent / "challenge" / "classification_challenge.jsonl"
CHITCHAT_TURNS = 4          # opening turns of a conversation: greetings and small talk
MIN_CHARS, MAX_CHARS = 2, 300
_URL = re.compile(r"https?://|www\.")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pip = name.replace("_", "-")
        raise DatasetError(Path(name), None, f"package `{pip}` is not installed; run `make setup` or `pip install {pip}`")
    return Path(spec.submodule_search_locations[0])


def _clean(text: object) -> str | None:
    if not isinstance(text, str):
        return None
    text = " ".join(text.split())
    if not (MIN_CHARS <= len(text) <= MAX_CHARS) or _URL.search(text):
        return None
    return text


@dataclass(frozen=True)
class RealRow:
    source: str
    category: str
    text: str
    reply: str | None


def chitchat_rows() -> list[RealRow]:
    path = _package_dir("chitchat_dataset") / "dataset.json"
    conversations = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for conv_id, conv in conversations.items():
        turns = [" ".join(m["text"] for m in turn) for turn in conv.get("messages", [])][: CHITCHAT_TURNS + 1]
        for i, turn in enumerate(turns[:CHITCHAT_TURNS]):
            text = _clean(turn)
            if text:
                reply = _clean(turns[i + 1]) if i + 1 < len(turns) else None
                rows.append(RealRow(f"chitchat-dataset:{conv_id}", "general", text, reply))
    return rows


def chatterbot_rows() -> list[RealRow]:
    root = _package_dir("chatterbot_corpus") / "data" / "english"
    rows = []
    for name, category in CHATTERBOT_CATEGORIES.items():
        doc = yaml.safe_load((root / f"{name}.yml").read_text(encoding="utf-8")) or {}
        for i, conv in enumerate(doc.get("conversations", [])):
            if not conv:
                continue
            text = _clean(conv[0])
            if text:
                reply = _clean(conv[1]) if len(conv) > 1 else None
                rows.append(RealRow(f"chatterbot-corpus:{name}:{i}", category, text, reply))
    return rows


def split_of(source: str, validation_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """Stable split from the row's id: the same row lands in the same split on every run."""
    u = int.from_bytes(hashlib.sha256(source.encode()).digest()[:8], "big") / 2**64
    return "validation" if u < validation_fraction else "test" if u < validation_fraction + test_fraction else "train"


def real_rows(max_per_source: int = 1000) -> list[RealRow]:
    """All usable real rows, deduplicated by normalised text, at most `max_per_source` from each corpus.

    Which rows are kept beyond the cap is decided by the hash of their id, so it is stable too.
    """
    out: list[RealRow] = []
    seen: set[str] = set()
    for rows in (chatterbot_rows(), chitchat_rows()):
        rows = sorted(rows, key=lambda r: hashlib.sha256(f"{r.source}|{r.text}".encode()).digest())
        kept = 0
        for row in rows:
            key = normalize(row.text)
            if key and key not in seen and kept < max_per_source:
                seen.add(key)
                out.append(row)
                kept += 1
    return out


def real_examples(seen: set[str], max_per_source: int = 1000) -> dict[str, list[Example]]:
    """Real rows with a reply, as generation examples per split, skipping questions in `seen`."""
    out: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for row in real_rows(max_per_source):
        key = normalize(row.text)
        if row.reply is None or key in seen:
            continue
        seen.add(key)
        out[split_of(row.source)].append(Example(row.source, row.category, row.text, row.reply, row.reply, row.source))
    return out


@dataclass
class ImportReport:
    out_dir: Path
    rows: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)


def import_real(out_dir: Path, max_per_source: int = 1000) -> ImportReport:
    """Write classification and dialogue files of real text to `out_dir`, split by stable hash."""
    rows = real_rows(max_per_source)
    report = ImportReport(out_dir, by_source=dict(Counter(r.source.split(":")[0] for r in rows)))
    for split in SPLITS:
        part = [r for r in rows if split_of(r.source) == split]
        report.rows[f"classification_{split}.jsonl"] = atomic_write_jsonl(
            out_dir / f"classification_{split}.jsonl",
            ({"text": r.text, "label": LABEL_IDS[r.category], "source": r.source} for r in part),
        )
        for category in LABELS:
            pairs = [r for r in part if r.category == category and r.reply]
            if pairs:
                name = f"dialogue_{category}_{split}.jsonl"
                report.rows[name] = atomic_write_jsonl(
                    out_dir / name, ({"input_text": r.text, "target_text": r.reply, "source": r.source} for r in pairs)
                )
    report.rows[CHALLENGE_FILE.name] = atomic_write_jsonl(out_dir / CHALLENGE_FILE.name, read_jsonl(CHALLENGE_FILE))
    logger.info("imported %d real rows into %s", len(rows), out_dir)
    return report
