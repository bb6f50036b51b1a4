"""Progress of a training loop, for a person at a terminal and for a log file alike: on a terminal, a bar
with the latest figures; otherwise (CI, `make demo > demo.log`) one plain line per report, so a log holds
no cursor escapes and no raw metric dicts."""

from __future__ import annotations

import sys
from typing import Any


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.3f}"
    return str(value)


class StepProgress:
    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc = total, desc
        self.bar = None
        if sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)

    def step(self, n: int = 1, **figures: Any) -> None:
        """`n` more steps done; `figures` shown beside the bar (a terminal only: a file gets `report`s)."""
        if self.bar is not None:
            self.bar.update(n)
            if figures:
                self.bar.set_postfix({k: _fmt(v) for k, v in figures.items()})

    def report(self, step: int, **figures: Any) -> None:
        """Figures worth a line: beside the bar on a terminal, one line of their own in a file."""
        if self.bar is not None:
            self.bar.set_postfix({k: _fmt(v) for k, v in figures.items()})
            return
        shown = " · ".join(f"{k} {_fmt(v)}" for k, v in figures.items())
        print(f"{self.desc}: step {step}/{self.total} · {shown}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
