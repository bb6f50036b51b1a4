"""`pz2 data …`: build, import and check datasets."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from pz2.cli.common import _ws, console, data_app
from pz2.data.schema import FileKind
from pz2.errors import UsageError


class Lang(str, Enum):
    en = "en"
    ko = "ko"


@data_app.command("generate")
def data_generate(
    ctx: typer.Context,
    seed: Annotated[int | None, typer.Option(help="Random seed (config: data.seed).")] = None,
    per_category: Annotated[int | None, typer.Option(help="Questions per category (config: data.per_category).")] = None,
    include_real: Annotated[bool | None, typer.Option("--include-real/--no-include-real",
                                                      help="Mix in human-written rows (config: data.include_real).")] = None,
    output: Annotated[Path | None, typer.Option(help="Output folder (default: <workspace>/datasets/processed_english).")] = None,
) -> None:
    """Write the seed's nine dataset files.

    Example: [bold]pz2 data generate --seed 7 --per-category 500[/]
    """
    from pz2.data.generate import generate
    from pz2.views import rows_table

    ws = _ws(ctx)
    cfg = ws.training_config({"data.seed": seed, "data.per_category": per_category, "data.include_real": include_real})
    out = output or ws.datasets
    with console.status("generating datasets ..."):
        report = generate(cfg.data, ws.model_config().system_prompt, out)
    console.print(rows_table(f"{out}  (seed {cfg.data.seed}, {report.seconds:.2f} s)", report.rows))
    if report.real_rows:
        console.print(f"including {report.real_rows} human-written rows")


@data_app.command("import")
def data_import(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option(help="Output folder (default: <workspace>/datasets/real_english).")] = None,
    max_per_source: Annotated[int, typer.Option(min=1, help="Rows kept from each corpus at most.")] = 1000,
) -> None:
    """Convert human-written text from packaged corpora (chitchat-dataset, chatterbot-corpus) to the seed's formats.

    Example: [bold]pz2 data import --max-per-source 500[/]
    """
    from pz2.data.real import import_real
    from pz2.views import rows_table

    out = output or _ws(ctx).real_datasets
    with console.status("importing real text ..."):
        report = import_real(out, max_per_source)
    sources = ", ".join(f"{k}: {v}" for k, v in report.by_source.items())
    console.print(rows_table(f"{out}  ({sources})", report.rows))


@data_app.command("validate")
def data_validate(
    ctx: typer.Context,
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders (default: the workspace's processed_english).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    lang: Annotated[Lang, typer.Option(help="Message language (ko: 한국어).")] = Lang.en,
    tokens: Annotated[bool, typer.Option("--tokens/--no-tokens", help="Check the base-tokenizer token limit.")] = True,
    kind: Annotated[FileKind | None, typer.Option(help="The format of named files whose name says none "
                                                   "(classification_*, dialogue_*, unified_*).")] = None,
) -> None:
    """Check dataset files; exit 0 when clean, 1 on errors, 2 on bad usage. Inputs are never modified.

    Example: [bold]pz2 data validate --lang ko[/]   [bold]pz2 data validate my_rows.jsonl --kind unified[/]
    """
    from pz2.data.schema import file_info
    from pz2.data.validate import validate_directory, validate_files
    from pz2.models.prepare import base_token_counter
    from pz2.views import print_validation

    ws = _ws(ctx)
    targets = paths or [ws.datasets]
    for p in targets:
        if not p.exists():
            raise UsageError(f"{p}: no such file or folder")
    named = [p for p in targets if p.is_file()]
    unknown = [p for p in named if file_info(p) is None]
    if unknown and kind is None:
        raise UsageError(f"{unknown[0]}: the file name follows no known pattern (classification_*, "
                         "dialogue_<qna|technical|general>_*, unified_*); rename it or say its format with "
                         "--kind classification|dialogue|unified")
    cfg = ws.training_config().validation
    counter = base_token_counter(ws.model_config()) if tokens else None
    if len(targets) == 1 and targets[0].is_dir():
        report = validate_directory(targets[0], cfg, counter, require_defaults=targets[0].resolve() == ws.datasets.resolve())
    else:
        files = [f for p in targets for f in (sorted(p.glob("*.jsonl")) if p.is_dir() else [p])]
        report = validate_files(files, cfg, counter, dict.fromkeys(unknown, kind) if kind else None)
    if as_json:
        typer.echo(json.dumps(report.to_dict(lang.value), ensure_ascii=False, indent=2))
    else:
        print_validation(console, report, lang.value)
    raise typer.Exit(code=0 if report.ok else 1)


@data_app.command("feedback")
def data_feedback(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option(help="JSONL of preference pairs, as TRL's DPOTrainer reads them.")],
) -> None:
    """Export preference pairs from the chat's feedback: for each question answered twice where a person rejected one
    answer (👎, /bad, or asking for expert mode after it) and kept the other, {prompt, chosen, rejected} in TRL's
    conversational format. Reads logs/assistant/decisions.jsonl and feedback.jsonl; never modifies them.

    Example: [bold]pz2 data feedback --output pairs.jsonl[/]
    """
    from pz2.fileio import atomic_write_jsonl, distinct_output
    from pz2.runtime.append_log import read_log
    from pz2.runtime.feedback import DECISIONS_FILE, FEEDBACK_FILE, Feedback, preference_pairs

    logs = _ws(ctx).assistant_logs
    if not (logs / FEEDBACK_FILE).is_file():
        raise UsageError(f"{logs / FEEDBACK_FILE}: no feedback yet; rate answers in `pz2 chat` (/good, /bad), the web "
                         "chat (👍 👎) or over POST /v1/feedback")
    for log in (FEEDBACK_FILE, DECISIONS_FILE):
        distinct_output(logs / log, output)
    events = [e for r in read_log(logs / FEEDBACK_FILE) if (e := Feedback.from_record(r)) is not None]
    pairs = preference_pairs(read_log(logs / DECISIONS_FILE), events)
    atomic_write_jsonl(output, pairs)
    console.print(f"{len(pairs)} preference pairs from {len(events)} ratings written to {output}")
