"""report.md of `pz2 eval compare`: the seed's table with figures, the architectures, the router, the models."""

from __future__ import annotations

from typing import Any

from pz2.evaluation.architectures import ARCHITECTURES, ArchitectureRun
from pz2.evaluation.eval_set import EvalRow
from pz2.runtime.router import SPECIALISTS

SAMPLES = 8
NAMES = {"hybrid": "hybrid (unified + specialists)", "separated": "separated", "unified": "unified"}


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def figure(value: float | None) -> str:
    """A measured figure beside the seed's stars: whole numbers for ms and MB, two decimals for the rest."""
    return "" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.2f}"


def _cell(text: str, width: int = 140) -> str:
    text = " ".join(text.split()).replace("|", "/")
    return text if len(text) <= width else text[: width - 1] + "…"


def seed_table_lines(metrics: dict[str, Any]) -> list[str]:
    lines = ["| property | measured as | " + " | ".join(NAMES[a] for a in ("hybrid", "separated", "unified")) + " |",
             "|---|---|---|---|---|"]
    for row in metrics["seed_table"]:
        cells = [f"{'⭐' * row[a]['stars']} {figure(row[a]['value'])}".strip()
                 for a in ("hybrid", "separated", "unified")]
        lines.append(f"| {row['property']} | {row['measure']} | " + " | ".join(cells) + " |")
    return lines


def _architectures(metrics: dict[str, Any]) -> list[str]:
    metric = metrics["quality_metric"]
    categories = [c for c in metrics["architectures"]["unified"]["quality"] if c != "all"] + ["all"]
    lines = ["| architecture | " + " | ".join(f"{metric} {c}" for c in categories) +
             " | factual acc. | cut mid-sentence | first token p50/p95 ms | answer p50/p95 ms | escalation | loads | peak RSS MB"
             " | CPU s/answer |",
             "|---" * (len(categories) + 9) + "|"]
    for name in ARCHITECTURES:
        a = metrics["architectures"][name]
        q = a["quality"]
        lat = a["latency"]
        lines.append(
            f"| {name} | " + " | ".join(fmt(q[c][metric]) for c in categories) +
            f" | {fmt(q['all']['factual_accuracy'])} ({q['all']['factual_rows']} rows) | {a['cut_mid_sentence']:.2f}"
            f" | {fmt(lat['first_token_ms']['p50'], 0)} / {fmt(lat['first_token_ms']['p95'], 0)}"
            f" | {fmt(lat['total_ms']['p50'], 0)} / {fmt(lat['total_ms']['p95'], 0)}"
            f" | {a['escalation_rate']:.2f} | {a['specialist_loads']} | {a['peak_rss_mb']:.0f} | {a['cpu_s_per_answer']:.2f} |")
    return lines


def _router(metrics: dict[str, Any]) -> list[str]:
    r = metrics["router"]
    lines = [f"Swept over the {r['rows']} {r['scope']}; quality = {r['metric']}.", ""]
    if r.get("note"):
        lines += [f"**{r['note']}**", ""]
    if "configured" not in r:
        return lines
    c, h = r["configured"], r["hybrid"]
    lines += [
        "| measure | value |", "|---|---|",
        f"| quality, nothing escalated (unified) | {fmt(r['q_weak'])} |",
        f"| quality, everything escalated (specialists) | {fmt(r['q_strong'])} |",
        f"| APGR (random router: 0.5) | {fmt(r['apgr'])} |",
        f"| APGR of the oracle router | {fmt(r['oracle_apgr'])} |",
        f"| CPT(50 %) | {fmt(r['cpt50'])} |", f"| CPT(80 %) | {fmt(r['cpt80'])} |",
        f"| configured threshold {r['threshold']:.2f}: escalation, quality, PGR | "
        f"{c['escalation_rate']:.3f}, {fmt(c['quality'])}, {fmt(c['pgr'])} |",
        f"| hybrid as configured (complexity, offers too): escalation, quality, PGR | "
        f"{h['escalation_rate']:.3f}, {fmt(h['quality'])}, {fmt(h['pgr'])} |", "",
        "| specialist | rows | q unified | q specialist | APGR | CPT(50 %) | CPT(80 %) | note |", "|---|---|---|---|---|---|---|---|",
    ]
    for kind, p in r["per_category"].items():
        lines.append(f"| {kind} | {p['rows']} | {fmt(p['q_weak'])} | {fmt(p['q_strong'])} | {fmt(p['apgr'])} | "
                     f"{fmt(p['cpt50'])} | {fmt(p['cpt80'])} | {p['note'] or ''} |")
    lines += ["", "The router's confidence (generation + the knowledge base's check) beside the generation's alone, "
              "on the same rows:", "",
              "| confidence | rows | n | q unified | q specialist | APGR | CPT(50 %) | CPT(80 %) | note |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, by_origin in r.get("by_confidence", {}).items():
        for origin, p in by_origin.items():
            lines.append(f"| {name} | {origin} | {p['rows']} | {fmt(p['q_weak'])} | {fmt(p['q_strong'])} | {fmt(p['apgr'])} | "
                         f"{fmt(p['cpt50'])} | {fmt(p['cpt80'])} | {p['note'] or ''} |")
    return lines


def _models(metrics: dict[str, Any]) -> list[str]:
    lines = ["| model | rows | SemScore | ROUGE-L | chrF | BLEU | factual acc. | words | repeated 4-gram | loss | perplexity |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in metrics["models"].items():
        q = m["quality"]["all"]
        lines.append(f"| {name} | {m['rows']} | {fmt(q['semscore'])} | {fmt(q['rouge_l'])} | {fmt(q['chrf'])} | "
                     f"{fmt(q['bleu'])} | {fmt(q['factual_accuracy'])} ({q['factual_rows']}) | {fmt(q['words'], 1)} | "
                     f"{fmt(q['repeat_4gram'], 2)} | {fmt(m['loss'])} | {fmt(m['perplexity'], 1)} |")
    return lines


def _confidence(conf: dict[str, Any]) -> list[str]:
    """Each confidence's calibration and its routing curve's APGR, on all rows and on generated and human-written
    rows apart: the router's (generation + the knowledge base's check) beside the generation's alone."""
    good = conf["good"]
    lines = [f"An answer is good when it contains the fact (a reference of at most {good['short_answer_words']} words), "
             f"else when its SemScore reaches {good['semscore']}. Escalatable rows only.", "",
             "| confidence | rows | answers | good | ECE (95 % interval) | AUC |", "|---|---|---|---|---|---|"]
    for name, by_origin in conf.get("by_confidence", {}).items():
        for origin, m in by_origin.items():
            lo, hi = m["ece_ci95"]
            lines.append(f"| {name} | {origin} | {m['rows']} | {m['good_rate']:.0%} | {fmt(m['ece'])} ({fmt(lo)}–{fmt(hi)}) "
                         f"| {fmt(m['auc'])} |")
    return lines


def _samples(rows: list[EvalRow], runs: dict[str, ArchitectureRun], answers: dict[str, dict[int, str]]) -> list[str]:
    lines = ["| question | reference | base | unified | specialist | hybrid |", "|---|---|---|---|---|---|"]
    picked = [i for i in range(len(rows)) if any(i in answers[k] for k in SPECIALISTS)][: SAMPLES - 2]
    picked += [i for i in range(len(rows)) if i not in picked][: SAMPLES - len(picked)]
    for i in sorted(picked):
        specialist = next((f"({k}) {answers[k][i]}" for k in SPECIALISTS if i in answers[k]), "")
        lines.append(f"| {_cell(rows[i].question, 80)} | {_cell(rows[i].references[0], 100)} | {_cell(answers['base'][i])} | "
                     f"{_cell(answers['unified'][i])} | {_cell(specialist)} | {_cell(runs['hybrid'].answers[i].text)} |")
    return lines


def markdown(metrics: dict[str, Any], rows: list[EvalRow], runs: dict[str, ArchitectureRun],
             answers: dict[str, dict[int, str]]) -> str:
    conf = metrics["confidence"]
    clf = metrics["classifier"]
    lines = [
        "# Hybrid vs separated vs unified, measured", "",
        f"{metrics['rows']} held-out rows ({', '.join(f'{k} {v}' for k, v in metrics['rows_by_category'].items())}), "
        f"one process, {metrics['engine']} engine, greedy decoding; quality metric for routing: "
        f"**{metrics['quality_metric']}**. Data: " + ", ".join(f"`{d['path']}`" for d in metrics["data"]) + ".", "",
        "## The seed's table, with figures", "",
        "Stars are the seed's; the figure beside them is measured here (lower is better for speed, memory "
        "and resources; higher for expertise).", "",
        *seed_table_lines(metrics), "",
        "## Architectures", "",
        *_architectures(metrics), "",
        "Latency is wall clock per answer: the separated architecture includes the classifier, the hybrid "
        "also the router and, when it escalates, both answers. Peak RSS is this process's resident memory "
        "sampled after every answer of that run.", "",
        "## Targets", "",
        "| target | measured | goal | met |", "|---|---|---|---|",
        *[f"| {k} | {fmt(t['value'])} | {t['target']} | {fmt(t['met'])} |" for k, t in metrics["targets"].items()], "",
        "## Router: quality against escalation rate", "",
        *_router(metrics), "",
        "![routing curve](routing_curve.png) ![latency](latency.png)", "",
        "## Models side by side", "",
        "The base and the unified model answer every row; each specialist the rows of its own category. "
        "Loss and perplexity: the model's mean negative log-likelihood per token of the file's reference answer.", "",
        *_models(metrics), "",
        "## Confidence and classifier on these rows", "",
        *(_confidence(conf) if conf else ["No confidence model: `pz2 train confidence`."]),
        f"Classifier accuracy {fmt(clf['accuracy'])}, macro-F1 {fmt(clf['macro_f1'])} on {clf['rows']} rows.", "",
        "![reliability](reliability.png) ![confusion matrix](confusion_matrix.png)", "",
        f"## Sample answers (first {SAMPLES})", "",
        *_samples(rows, runs, answers), "",
    ]
    return "\n".join(lines)
