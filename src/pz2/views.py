"""Rich renderings shared by CLI commands and the demo; the library itself never prints."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from pz2.data.validate import ValidationReport


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
