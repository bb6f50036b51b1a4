"""Rich renderings shared by CLI commands and the demo; the library itself never prints."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape
from rich.status import Status
from rich.table import Table

from pz2.data.validate import ValidationReport


def source_lines(sources: list[dict], indent: str = "  ") -> list[str]:
    """One line per passage of an answer: its number, title, where it is, and whether the answer cited it."""
    return [f"[dim]{indent}[{s['n']}] {escape(s['title'])} · {escape(s['path'])}:{s['line_start']}-{s['line_end']} · "
            f"similarity {s['similarity']:.2f}{' · cited' if s['cited'] else ''}[/]" for s in sources]


def embedding_progress(status: Status) -> Callable[[int, int], None]:
    """`build_knowledge`'s progress as the text of a spinner (shown on a terminal only)."""
    return lambda done, total: status.update(f"embedding passages with MiniLM: {done:,} of {total:,}")


def rows_table(title: str, rows: dict[str, int]) -> Table:
    table = Table(title=title)
    table.add_column("file")
    table.add_column("rows", justify="right")
    for name, n in rows.items():
        table.add_row(name, str(n))
    return table


def print_validation(console: Console, report: ValidationReport, lang: str = "en", limit: int = 200) -> None:
    ko = lang == "ko"
    table = Table(title="데이터 검증" if ko else "dataset validation")
    for col in ("파일", "종류", "행 수", "레이블 분포") if ko else ("file", "kind", "rows", "labels"):
        table.add_column(col)
    for f in report.files:
        labels = ", ".join(f"{k}={v}" for k, v in f.labels.items())
        table.add_row(f.path.name, f.kind.value if f.kind else "-", str(f.rows), labels)
    console.print(table)
    for issue in report.issues[:limit]:
        color = "red" if issue.severity.value == "error" else "yellow"
        console.print(f"[{color}]{issue.severity.value}[/] {issue.location()}: {issue.message(lang)}",
                      highlight=False, soft_wrap=True)
    if len(report.issues) > limit:
        console.print(f"... and {len(report.issues) - limit} more (use --json for all)")
    summary = (f"오류 {len(report.errors)}개, 경고 {len(report.warnings)}개" if ko
               else f"{len(report.errors)} errors, {len(report.warnings)} warnings")
    console.print(f"[{'green' if report.ok else 'red'}]{summary}[/]")


def print_comparison(console: Console, metrics: dict) -> None:
    """The seed's table with measured figures, then one line per architecture and the router's measures."""
    from pz2.evaluation.compare_report import figure, fmt

    metric = metrics["quality_metric"]
    table = Table(title=f"the seed's table, measured ({metrics['rows']} rows, {metrics['engine']} engine)")
    for col in ("property", "measured as", "hybrid", "separated", "unified"):
        table.add_column(col)
    for row in metrics["seed_table"]:
        table.add_row(row["property"], row["measure"], *(
            f"{'⭐' * row[a]['stars']} {figure(row[a]['value'])}"
            for a in ("hybrid", "separated", "unified")))
    console.print(table)
    table = Table(title=f"architectures: {metric} per category, whole-answer latency, escalation")
    categories = [c for c in metrics["architectures"]["unified"]["quality"] if c != "all"] + ["all"]
    short = {"general": "gen.", "technical": "tech."}
    table.add_column("", no_wrap=True)
    for col in (*(short.get(c, c) for c in categories), "p50 ms", "p95 ms", "escal.", "loads", "RSS MB"):
        table.add_column(col, justify="right")
    for name, a in metrics["architectures"].items():
        q, lat = a["quality"], a["latency"]["total_ms"]
        table.add_row(name, *(fmt(q[c][metric], 2) for c in categories), fmt(lat["p50"], 0), fmt(lat["p95"], 0),
                      f"{a['escalation_rate']:.2f}", str(a["specialist_loads"]), f"{a['peak_rss_mb']:.0f}")
    console.print(table)
    r = metrics["router"]
    if r.get("note"):
        console.print(f"router: {r['note']}")
    if "configured" in r:
        console.print(f"router ({r['rows']} escalatable rows): APGR {fmt(r['apgr'])} (random 0.5, oracle "
                      f"{fmt(r['oracle_apgr'])}), CPT(50%) {fmt(r['cpt50'])}, CPT(80%) {fmt(r['cpt80'])}; threshold "
                      f"{r['threshold']:.2f} escalates {r['configured']['escalation_rate']:.0%} with PGR "
                      f"{fmt(r['configured']['pgr'])}; the hybrid as configured {r['hybrid']['escalation_rate']:.0%} "
                      f"with PGR {fmt(r['hybrid']['pgr'])}")
    missed = [k for k, t in metrics["targets"].items() if not t["met"]]
    console.print("targets: " + ", ".join(f"{k} {fmt(t['value'])} ({t['target']})" for k, t in metrics["targets"].items())
                  + (f"; missed: {', '.join(missed)}" if missed else "; all met"))


def confidence_lines(m: dict) -> str:
    """A confidence fit's calibration, overall and on generated and human-written questions apart (the
    probabilities must hold on both)."""

    def line(name: str, d: dict) -> str:
        auc = "n/a" if d["auc"] is None else f"{d['auc']:.3f}"
        lo, hi = d["ece_ci95"]
        return (f"  {name}: {d['rows']} checked answers, {d['good_rate']:.0%} good, out-of-fold ECE {d['ece']:.3f} "
                f"(95% CI {lo:.3f}-{hi:.3f}), AUC {auc}")

    kinds = {"generated": "generated questions", "human": "human questions", "feedback": "answers people rated"}
    parts = [line("all", m)] + [line(name, m[kind]) for kind, name in kinds.items() if kind in m]
    how = ("each checked against the knowledge base as it is, and again without the passages that state it"
           if m.get("checked") else "no knowledge base: not checked")
    return "\n".join(parts + [f"  {m.get('answers', m['rows'])} answers, {how}; {m.get('seconds', 0):.0f} s"])
