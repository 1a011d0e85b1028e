"""The study's answer up front: its verdicts on the claims, with the paper's numbers beside ours,
and the two figures that answer the question, each with one sentence on how to read it.

Written twice from the same rows: ``SUMMARY.md`` (figures and every table linked by relative path,
so it reads on GitHub, in an editor or with ``cat`` on a cluster) and an HTML fragment with the
figures inline as data URIs, which the Snakemake report's landing page includes.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from html import escape
from pathlib import Path

import pandas as pd

from alignfuse.analysis.claims import REJECTIONS, REPRODUCED
from alignfuse.analysis.display import difference, recipes_cell, with_bounds
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import atomic_path, read_frame

QUESTION = "Does feature alignment decide whether concatenation or cross-attention fusion wins?"
# The figures that answer the question, in the order shown, with how to read each.
READING = {
    "gap": (
        "Each line is one declared comparison, a reference minus a cross-attention method (test "
        "accuracy points, paired on seeds), against training pairs, tuned against tuned and "
        "shared against shared: a band above the dashed zero line is a lead the study can tell "
        "from none, and a band inside the hatched range reproduces the claim."
    ),
    "alignment_gap": (
        "Each line is a reference's lead over one method as the text features are degraded "
        "(0 is the undegraded set): lines that rise to the right say the reference's advantage "
        "grows as alignment degrades, as the paper claims."
    ),
}
INLINE = {".png": "image/png"}
VERDICT_COLUMNS = [
    "claim",
    "comparison",
    "feature set",
    "pairs",
    "paper",
    "ours",
    "interval over",
    "recipes",
]
NUMBERS = ("paper", "ours")  # kept on one line in the landing table
CLAIMS_FIX = "rerun the aggregate rule (it writes results/<study>/tables/paper_vs_ours.parquet)"


@dataclass(frozen=True)
class Answer:
    """What both forms of the summary show: the study, its verdict rows and the key figures."""

    study: str
    dataset: str
    confidence: float
    verdicts: pd.DataFrame  # VERDICT_COLUMNS + statement, verdict
    figures: dict[str, Path]  # name -> the file shown (PNG where drawn)
    links: list[Path]  # every table and figure file of the study


def paper_range(low: float, high: float) -> str:
    """The claimed band in points, or its one value (a trend claim's end), or a dash."""
    if pd.isna(low) or pd.isna(high):
        return "–"
    return f"{low:g}" if low == high else f"{low:g}–{high:g}"


def pairs_shown(scales: str, shown) -> str:
    """The row's training pairs; for a claim at several scales, which one's estimate is shown
    (the weakest: the verdict needs every scale)."""
    if "," not in str(scales) or pd.isna(shown):
        return str(scales)
    return f"{scales} ({shown} shown)"


def verdict_rows(claims: pd.DataFrame) -> pd.DataFrame:
    """The ``paper_vs_ours`` table reduced to what a reader needs first: each row's claim and
    comparison, the paper's number beside our estimate and interval, and the verdict."""
    rows = list(claims.itertuples())
    return pd.DataFrame(
        {
            "claim": claims["claim"].astype(str),
            "statement": claims["statement"].astype(str),
            "comparison": [difference(r) for r in rows],
            "feature set": [f"{r.backbone}@{r.alignment}" for r in rows],
            "pairs": [pairs_shown(r.scales, r.shown_scale) for r in rows],
            "paper": [paper_range(r.paper_low_pts, r.paper_high_pts) for r in rows],
            "ours": [
                with_bounds(r.ours_mean_pts, r.ours_low_pts, r.ours_high_pts, 1, 2) for r in rows
            ],
            "interval over": ["–" if pd.isna(r.interval) else str(r.interval) for r in rows],
            "recipes": [recipes_cell(r) for r in rows],
            "verdict": claims["verdict"].astype(str),
        }
    )


def read_answer(
    claims_path: Path,
    figures: list[Path],
    links: list[Path],
    study: str,
    dataset: str,
    confidence: float,
) -> Answer:
    """The answer from the study's ``paper_vs_ours`` table and figure files (a figure's name is
    its file's stem; only those with a reading are shown)."""
    claims_path = Path(claims_path)
    if not claims_path.is_file():
        raise AlignfuseError(f"{claims_path}: the claims table is missing; {CLAIMS_FIX}")
    claims = read_frame(claims_path, CLAIMS_FIX)
    shown = {Path(f).stem: Path(f) for f in figures if Path(f).stem in READING}
    return Answer(
        study=study,
        dataset=dataset,
        confidence=confidence,
        verdicts=verdict_rows(claims),
        figures={name: shown[name] for name in READING if name in shown},
        links=[Path(f) for f in links],
    )


def intro(answer: Answer) -> str:
    level = f"{answer.confidence:.0%}"
    return (
        f"Each claim of the study beside our estimate: the reference − the method, in points of "
        f"the claim's metric (a trend row: Spearman's rho), mean [{level} interval], how each "
        "side was trained (reference; method), and the verdict. A wider interval never earns a "
        "better verdict; a comparison of two different recipes says 'mixed recipe'."
    )


def no_claims(answer: Answer) -> str:
    return f"The study {answer.study} judges no claims (add them under the config key `claims`)."


def markdown_cell(value: str) -> str:
    return value.replace("|", "\\|")


def grouped_links(links: list[Path], root: Path) -> dict[str, list[tuple[str, str]]]:
    """Each table or figure (by stem, in the order first seen) -> its (format, relative path)s."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for path in links:
        relative = Path(os.path.relpath(path, root)).as_posix()
        groups.setdefault(path.stem, []).append((path.suffix.lstrip("."), relative))
    return groups


def link_lines(answer: Answer, root: Path) -> list[str]:
    """Markdown bullets per kind (tables, figures): each file by name, a link per format."""
    lines = []
    for kind in ("tables", "figures"):
        files = [f for f in answer.links if f.parent.name == kind]
        groups = grouped_links(files, root)
        if groups:
            lines.append(f"- {kind.capitalize()}:")
            lines += [
                f"  - {stem}: " + ", ".join(f"[{fmt}]({rel})" for fmt, rel in formats)
                for stem, formats in groups.items()
            ]
    return lines


def summary_markdown(answer: Answer, root: Path) -> str:
    """SUMMARY.md: the question, the verdicts, the key figures (linked relative to ``root``, the
    file's folder) with how to read each, and links to every table and figure."""
    lines = [
        f"# {QUESTION}",
        "",
        f"The answer of the study **{answer.study}** on the dataset **{answer.dataset}**.",
        "",
        "## Verdicts",
        "",
    ]
    if answer.verdicts.empty:
        lines += [no_claims(answer), ""]
    else:
        table = answer.verdicts[VERDICT_COLUMNS + ["verdict"]].map(markdown_cell)
        lines += [intro(answer), "", table.to_markdown(index=False, disable_numparse=True), ""]
        statements = answer.verdicts.drop_duplicates("claim")
        lines += [f"- **{r.claim}**: {r.statement}" for r in statements.itertuples()]
        lines.append("")
    lines += ["## Figures", ""]
    for name, path in answer.figures.items():
        relative = Path(os.path.relpath(path, root)).as_posix()
        if path.suffix in INLINE:
            lines += [f"![{name}]({relative})", ""]
        lines += [f"**[{name}]({relative})**: {READING[name]}", ""]
    lines += ["## Every table and figure", "", *link_lines(answer, root), ""]
    return "\n".join(lines)


def verdict_class(verdict: str) -> str:
    if verdict == REPRODUCED:
        return "reproduced"
    return "rejected" if verdict in REJECTIONS else "open"


def verdict_table_html(answer: Answer) -> str:
    """The verdicts as an HTML table: each claim's statement spans its rows."""
    head = "".join(f"<th>{escape(c)}</th>" for c in VERDICT_COLUMNS[1:] + ["verdict"])
    body = []
    for claim, rows in answer.verdicts.groupby("claim", sort=False):
        for i, row in enumerate(rows.to_dict("records")):
            cells = []
            if i == 0:
                cells.append(
                    f'<td class="claim" rowspan="{len(rows)}"><b>{escape(claim)}</b>: '
                    f"{escape(row['statement'])}</td>"
                )
            cells += [
                f'<td class="number">{escape(row[c])}</td>'
                if c in NUMBERS
                else f"<td>{escape(row[c])}</td>"
                for c in VERDICT_COLUMNS[1:]
            ]
            verdict = row["verdict"]
            cells.append(f'<td class="verdict {verdict_class(verdict)}">{escape(verdict)}</td>')
            body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<table class="verdicts"><thead><tr><th>claim</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def figure_html(name: str, path: Path) -> str:
    """A figure inline as a data URI with its reading; a format a browser cannot show inline is
    named with the fix instead."""
    reading = f"<figcaption><b>{escape(name)}</b>: {escape(READING[name])}</figcaption>"
    mime = INLINE.get(path.suffix)
    if mime is None:
        shown = (
            f'<p class="missing">{escape(path.name)} is not shown here: add png to the config '
            "key figures.formats to see it on this page.</p>"
        )
    else:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        shown = f'<img src="data:{mime};base64,{data}" alt="{escape(name)} figure">'
    return f'<figure class="{escape(name)}">{shown}{reading}</figure>'


ANSWER_STYLE = """
#study-answer table.verdicts{border-collapse:collapse;margin:0.5em 0;font-size:13px;width:auto}
#study-answer .verdicts th,#study-answer .verdicts td{padding:2px 8px;border-bottom:1px solid #ddd;
 text-align:left;vertical-align:top}
#study-answer .verdicts td.claim{max-width:18em}
#study-answer .verdicts td.number{white-space:nowrap}
#study-answer .verdicts td.verdict{font-weight:600}
#study-answer td.reproduced{color:#166534}
#study-answer td.rejected{color:#991b1b}
#study-answer td.open{color:#92400e}
#study-answer .verdicts-box{max-height:16em;overflow:auto}
#study-answer .figures{display:flex;gap:1em;align-items:flex-start}
#study-answer figure{flex:1 1 0;margin:0.5em 0;min-width:0}
#study-answer figure img{width:100%;height:auto;margin:0}
#study-answer figcaption{font-size:12px;line-height:1.35;margin-top:0.25em}
#study-answer p{margin:0.25em 0;font-size:12px}
"""


def landing_html(answer: Answer) -> str:
    """The fragment the report's landing page includes: the verdict table, then the figures side
    by side with their readings (sized so that both fit the first screen)."""
    parts = [f'<div id="study-answer"><style>{ANSWER_STYLE}</style>']
    if answer.verdicts.empty:
        parts.append(f"<p>{escape(no_claims(answer))}</p>")
    else:
        parts.append(f'<div class="verdicts-box">{verdict_table_html(answer)}</div>')
        parts.append(f"<p>{escape(intro(answer))}</p>")
    figures = "".join(figure_html(name, path) for name, path in answer.figures.items())
    parts.append(f'<div class="figures">{figures}</div></div>\n')
    return "".join(parts)


def write_answer(answer: Answer, markdown_out: Path, html_out: Path) -> None:
    """Write SUMMARY.md and the landing fragment atomically."""
    markdown_out, html_out = Path(markdown_out), Path(html_out)
    with atomic_path(markdown_out) as tmp:
        tmp.write_text(summary_markdown(answer, markdown_out.parent), encoding="utf-8")
    with atomic_path(html_out) as tmp:
        tmp.write_text(landing_html(answer), encoding="utf-8")
