"""`pz2 data …`: build, import and check datasets."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

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


class Format(str, Enum):
    auto = "auto"
    messages = "messages"
    sharegpt = "sharegpt"
    alpaca = "alpaca"


@data_app.command("import")
def data_import(
    ctx: typer.Context,
    source: Annotated[Path | None, typer.Argument(help="Your conversations: a .jsonl, .json, .parquet or .csv file, a "
                                                       "folder of them, or a `save_to_disk` folder. Without it: the "
                                                       "packaged human-written corpora.")] = None,
    format: Annotated[Format, typer.Option("--format", help="messages (OpenAI), sharegpt, alpaca, or auto (told "
                                                            "from the first rows).")] = Format.auto,
    category_column: Annotated[str | None, typer.Option(help="The column holding each conversation's category "
                                                             "(qna, technical, general or 0, 1, 2).")] = None,
    category: Annotated[str | None, typer.Option(help="One category for every conversation: qna, technical or "
                                                      "general.")] = None,
    license: Annotated[str | None, typer.Option("--license", help="Recorded with every row (default: the dataset "
                                                                  "card's, else `unspecified`).")] = None,
    output: Annotated[Path | None, typer.Option(help="Output folder (default: <workspace>/datasets/real_english, or "
                                                     "<workspace>/datasets/imported/<name> for your own data).")] = None,
    max_per_source: Annotated[int, typer.Option(min=1, help="Packaged corpora: rows kept from each at most.")] = 1000,
) -> None:
    """Convert conversations to the seed's files: your own (OpenAI messages, ShareGPT, Alpaca) or, without SOURCE,
    human-written text from packaged corpora (chitchat-dataset, chatterbot-corpus).

    Your conversations become unified_*, dialogue_<category>_* and, when you give the categories,
    classification_* files, split by a hash of each conversation; without --category or --category-column
    the trained classifier labels them and its probability is recorded. Every dropped row is reported with
    its line and why, in import_report.json.

    Example: [bold]pz2 data import chats.jsonl --category-column topic[/]   [bold]pz2 data import alpaca.json --category technical[/]
    [bold]pz2 train unified --data finetuning/datasets/imported/chats/unified_train.jsonl[/]
    """
    from pz2.views import rows_table

    ws = _ws(ctx)
    if source is None:
        from pz2.data.real import import_real

        out = output or ws.real_datasets
        with console.status("importing real text ..."):
            report = import_real(out, max_per_source)
        sources = ", ".join(f"{k}: {v}" for k, v in report.by_source.items())
        console.print(rows_table(f"{out}  ({sources})", report.rows))
        return
    from pz2.data.own_data import Categories, import_conversations

    if category is not None and category not in ("qna", "technical", "general"):
        raise UsageError(f"--category {category}: expected qna, technical or general")
    if category is not None and category_column is not None:
        raise UsageError("--category and --category-column: give one")
    categories = Categories(fixed=category, column=category_column, labeller=None if category or category_column
                            else _classifier_labeller(ws))
    out = output or ws.datasets.parent / "imported" / (source.stem or "data")
    with console.status(f"importing {source} ..."):
        report = import_conversations(source, out, format.value, categories, license,
                                      ws.training_config().validation)
    how = f"{report.format} (detected)" if report.detected else report.format
    console.print(rows_table(f"{out}  ({how}; {report.kept} of {report.read} conversations kept, categories from "
                             f"{report.category_from}, {report.seconds:.1f} s)", report.rows))
    for reason, where in report.dropped.items():
        shown = ", ".join(where[:5]) + (f" and {len(where) - 5} more" if len(where) > 5 else "")
        console.print(f"dropped {len(where)}: {reason} ({shown})")


def _classifier_labeller(ws: Any) -> Any:
    """The trained conversation classifier as the import's labeller; its absence is a usage error."""
    from pz2.runtime.classifier import ConversationClassifier

    path = ws.unified_model / "classifier"
    if not path.is_dir():
        raise UsageError("no categories: give --category-column or --category, or train the classifier first "
                         "(`pz2 train classifier`) so that it labels your conversations")
    classifier = ConversationClassifier.load(path)
    return lambda texts: [(p.label, p.confidence) for p in classifier.predict(texts)]


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
