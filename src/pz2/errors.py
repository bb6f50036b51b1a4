"""Typed errors. The library raises these; only the CLI turns them into a message and an exit code."""

from __future__ import annotations

from pathlib import Path


class Pz2Error(Exception):
    """Base of every error a user can cause; its message says what, where and what to do."""


class ConfigError(Pz2Error):
    """A config file or override is missing, malformed, or has a bad value."""

    def __init__(self, path: Path | None, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path


class DatasetError(Pz2Error):
    """A dataset file cannot be read as the kind of file it claims to be."""

    def __init__(self, path: Path, line: int | None, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}" if line else f"{path}: {problem}")
        self.path, self.line = path, line


class ModelError(Pz2Error):
    """A model cannot be found, prepared or loaded."""


class EngineUnavailable(ModelError):
    """The configured engine cannot serve this model (llama.cpp and an architecture or tensor it has no
    GGUF for); another engine can, and the runtime falls back to it with this reason."""


class ContextLengthError(ModelError):
    """The messages do not fit the engine's context, even with every earlier turn dropped: the request's
    own fault (an API answers 400 `context_length_exceeded`), not the model's."""


class UsageError(Pz2Error):
    """The command was called with arguments that cannot work together."""
