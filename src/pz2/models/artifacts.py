"""The one reader of the files a model folder is made of: JSON records and Hugging Face checkpoints.

A corrupt, truncated or partial file (a classifier's `pz2_classifier.json`, a `confidence.json`,
an adapter's `manifest.json` or `adapter_config.json`, a missing tokenizer or weight file, a hub
id that is not in the local cache) ends in one `ModelError` naming the file and the command that
makes it again, whichever command reads it: classify, chat, status, eval, export, the menu.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pz2.errors import ModelError, Pz2Error

logger = logging.getLogger(__name__)
T = TypeVar("T")


def first_line(e: BaseException) -> str:
    """An exception's message as one line: a library's message can run over a screen."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read_json(path: Path, fix: str, fields: dict[str, type | tuple[type, ...]] | None = None) -> dict[str, Any]:
    """The JSON object in `path`, with `fields` present and of their types; `fix` says how to make it again."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: missing; {fix}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: not valid JSON, truncated or corrupt ({e}); {fix}") from None
    except OSError as e:
        raise ModelError(f"{path}: cannot be read ({e.strerror or e}); {fix}") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: expected a JSON object, got {type(raw).__name__}; {fix}")
    for name, kind in (fields or {}).items():
        kinds, value = kind if isinstance(kind, tuple) else (kind,), raw.get(name)
        if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:   # JSON true is no count
            raise ModelError(f"{path}: field `{name}` is missing or of the wrong type; {fix}")
    return raw


def pretrained(load: Callable[..., T], source: Path | str, what: str, fix: str, **kwargs: Any) -> T:
    """`load(source, **kwargs)`, a `from_pretrained` of a folder or hub id. Whatever transformers,
    PEFT or safetensors raise on a broken, partial or uncached model (OSError, ValueError, KeyError,
    SafetensorError, a JSON error, ...) is the user's file, not a bug of ours: one line, the full
    traceback in the log at debug level."""
    try:
        return load(source, **kwargs)
    except Pz2Error:
        raise
    except Exception as e:
        logger.debug("loading %s from %s failed", what, source, exc_info=True)
        if isinstance(source, str) and not Path(source).exists():
            raise ModelError(f"{source}: no such folder, and not a model in the local Hugging Face cache "
                             f"(pz2 never downloads); give a local directory or run `huggingface-cli download "
                             f"{source}` once ({first_line(e)})") from None
        raise ModelError(f"{source}: its {what} cannot be loaded ({first_line(e)}); {fix}") from None


def require_file(path: Path, fix: str) -> Path:
    if not path.is_file():
        raise ModelError(f"{path}: missing; {fix}")
    return path


# A tokenizer folder holds one of these; without any, transformers builds an empty tokenizer of the
# model type (five special tokens) and every text becomes [UNK]: silently wrong, so it is refused.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "vocab.json", "spiece.model", "sentencepiece.bpe.model")


def load_tokenizer(source: Path | str, fix: str, **kwargs: Any) -> Any:
    """`AutoTokenizer.from_pretrained` of a folder that really holds a tokenizer (or a cached hub id)."""
    from transformers import AutoTokenizer

    folder = Path(source)
    if folder.is_dir() and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(f"{folder}: no tokenizer file ({', '.join(TOKENIZER_FILES[:2])}, ...); {fix}")
    return pretrained(AutoTokenizer.from_pretrained, source, "tokenizer", fix, **kwargs)
