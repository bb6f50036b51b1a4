"""Retrieval-augmented fine-tuning rows (RAFT, Zhang et al. 2024) for the specialists.

Each specialist row gets the passages its prompt will quote at run time. In most rows
(`oracle_fraction`) one of them is the passage holding the answer (its topic's document) and the
others are distractors, and the answer cites the oracle as [n]; in the rest every passage is a
distractor and the answer cites nothing, so the model learns both to use a passage and to
ignore one that does not answer. Passages keep the order the index ranks them in, the order the
runtime prompt shows them in (RAFT shuffles them). Distractors are the index's own best hits for
the question (hard negatives), drawn only from passages of training topics and training cheat
sheets: no validation or test answer reaches training through a distractor. The technical
specialist also gets rows written from the training cheat sheets' examples.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pz2.config import RaftConfig, RetrievalConfig
from pz2.data.conversation import last_exchange, with_answer
from pz2.data.generate import topic_documents
from pz2.data.schema import CITATION
from pz2.knowledge.chunking import Chunk
from pz2.knowledge.documents import bank_path
from pz2.knowledge.grounding import Passage, fit_passages
from pz2.knowledge.index import KnowledgeIndex
from pz2.models.sentence import SentenceEncoder


def bank_paths() -> dict[str, str]:
    """A topic's specialist answer -> the path of its document in the index."""
    return {text: bank_path(key) for key, (_, text) in topic_documents().items()}


def cite(answer: str, n: int) -> str:
    """The answer with [n] at the end of its first line (before a closing colon): where the
    claim the source supports is made."""
    first, sep, rest = answer.partition("\n")
    first = f"{first[:-1]} [{n}]:" if first.endswith(":") else f"{first} [{n}]"
    return first + sep + rest


def _passage(n: int, c: Chunk) -> Passage:
    return Passage(n, c.path, c.title, c.text, c.line_start, c.line_end)


def raft_rows(rows: Iterable[dict[str, Any]], kind: str, index: KnowledgeIndex, encoder: SentenceEncoder,
              tokenizer: Any, cfg: RaftConfig, retrieval: RetrievalConfig) -> list[dict[str, Any]]:
    """The rows with `passages` added (and the answer citing its oracle); a row whose answer has no
    document (a human-written corpus row, a user's own) gets distractors only. A conversation's last
    user turn is what retrieval reads and its last answer what cites."""
    rows = list(rows)
    paths = bank_paths()
    return _with_passages(rows, [(paths.get(last_exchange(r)[1]), None) for r in rows], getattr(cfg.passages, kind),
                          index, encoder, tokenizer, cfg, retrieval)


def sheet_examples(index: KnowledgeIndex) -> list[tuple[str, str, Chunk]]:
    """(question, answer, passage) for each example of the training cheat sheets: a comment line
    ("# To extract a .gz archive:") over its command lines becomes "How do I extract a .gz
    archive?" answered with the commands, the passage holding them as the oracle."""
    out: list[tuple[str, str, Chunk]] = []
    seen: set[str] = set()
    for chunk in index.chunks:
        if chunk.collection != "cheat" or chunk.split != "train":
            continue
        for block in chunk.text.split("\n\n"):
            lines = [ln for ln in block.splitlines() if ln.strip()]
            if len(lines) < 2 or not lines[0].startswith("#") or any(ln.startswith("#") for ln in lines[1:]):
                continue
            action = lines[0].lstrip("# ").rstrip(" :.")
            action = action[3:] if action.lower().startswith("to ") else action
            if len(action.split()) < 2:
                continue
            action = action[0].lower() + action[1:]
            question = f"How do I {action}?"
            if CITATION.search(block):  # "${a[0]}" would read as a citation
                continue
            if question.lower() not in seen:
                seen.add(question.lower())
                out.append((question, f"To {action}:\n" + "\n".join(lines[1:]), chunk))
    return out


def sheet_rows(index: KnowledgeIndex, encoder: SentenceEncoder, tokenizer: Any, cfg: RaftConfig,
               retrieval: RetrievalConfig) -> list[dict[str, Any]]:
    """Up to `cfg.sheet_rows` technical rows from the training cheat sheets (`sheet_examples`), with
    passages as `raft_rows` gives them: the model also learns to take a command out of a sheet."""
    examples = sheet_examples(index)
    examples = random.Random(cfg.seed).sample(examples, min(cfg.sheet_rows, len(examples)))
    rows = [{"input_text": q, "target_text": a, "source": f"raft:{c.path}"} for q, a, c in examples]
    return _with_passages(rows, [(c.path, c.id) for _, _, c in examples], cfg.passages.technical, index, encoder,
                          tokenizer, cfg, retrieval)


def _with_passages(rows: list[dict[str, Any]], oracles: list[tuple[str | None, str | None]], count: int,
                   index: KnowledgeIndex, encoder: SentenceEncoder, tokenizer: Any, cfg: RaftConfig,
                   retrieval: RetrievalConfig) -> list[dict[str, Any]]:
    """Each row with `count` passages: oracle (document path, and the exact passage id when known) and
    hard-negative distractors from training passages, in the index's rank order."""
    rng = random.Random(cfg.seed)
    by_id = {c.id: c for c in index.chunks}
    first_of: dict[str, Chunk] = {}
    for c in index.chunks:
        first_of.setdefault(c.path, c)
    questions = [last_exchange(r)[0] for r in rows]
    vectors = encoder.embed(questions)
    out = []
    for row, question, (oracle_path, oracle_id), vector in zip(rows, questions, oracles, vectors, strict=True):
        # deep enough that distractors remain after dropping the oracle's own document (a sheet's examples)
        hits = index.search(vector, question, retrieval.candidates, retrieval.candidates)
        ranked = [h.chunk for h in hits]
        distractors = [c for c in ranked if c.path != oracle_path and c.split == "train"]
        oracle = None
        if oracle_path in first_of and rng.random() < cfg.oracle_fraction:
            oracle = by_id[oracle_id] if oracle_id else next((c for c in ranked if c.path == oracle_path),
                                                               first_of[oracle_path])
        chosen = distractors[: count - (oracle is not None)]
        if oracle is not None:
            rank = {c.id: i for i, c in enumerate(ranked)}
            if oracle.id in rank:   # where the index ranks it, as the prompt will order it at run time
                chosen = sorted([*chosen, oracle], key=lambda c: rank[c.id])
            else:
                chosen.insert(rng.randrange(len(chosen) + 1), oracle)
        # the budget cuts distractors before the oracle: a cited passage always holds its answer
        first = sorted(chosen, key=lambda c: c is not oracle)
        kept = fit_passages([_passage(i, c) for i, c in enumerate(first)], tokenizer, retrieval.max_passage_tokens)
        order = {c.id: i for i, c in enumerate(chosen)}
        kept.sort(key=lambda p: order[first[p.n].id])
        passages = [Passage(n, p.path, p.title, p.text) for n, p in enumerate(kept, start=1)]
        answer = last_exchange(row)[1]
        numbers = [p.n for p in passages if oracle is not None and p.path == oracle.path]
        if numbers:
            answer = cite(answer, numbers[0])
        out.append({**with_answer(row, answer),
                    "passages": [{"title": p.title, "text": p.text, "path": p.path} for p in passages]})
    return out


def raft_file(datasets: Path, kind: str, split: str) -> Path:
    """Where a specialist's RAFT rows are written (`pz2 data validate` reads them as dialogue files)."""
    return datasets / "raft" / f"dialogue_{kind}_{split}.jsonl"
