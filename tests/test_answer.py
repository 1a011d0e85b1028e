import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alignfuse.analysis.answer import (
    QUESTION,
    READING,
    landing_html,
    read_answer,
    summary_markdown,
    verdict_rows,
)
from alignfuse.analysis.claims import IMPRECISE, NOT_IN_STUDY, REPRODUCED, REVERSED
from alignfuse.cli import main
from alignfuse.errors import AlignfuseError
from alignfuse.parquet import write_frame

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
GAP_STATEMENT = "concat beats cross-attention by 4.1–5.1 points"
TREND_STATEMENT = "concat's lead grows from 1.3 to 2.8 points as alignment degrades"


def claim_row(**values) -> dict:
    row = {
        "claim": "clip_gap",
        "statement": GAP_STATEMENT,
        "backbone": "clip",
        "alignment": "raw",
        "reference": "concat",
        "method": "xattn_txt2img",
        "scales": "2048",
        "paper_low_pts": 4.1,
        "paper_high_pts": 5.1,
        "ours_mean_pts": 4.6,
        "ours_low_pts": 4.2,
        "ours_high_pts": 5.0,
        "interval": "seeds + test images",
        "reference_recipe": "lr 0.001 · wd 0.01 · constant",
        "method_recipe": "lr 0.001 · wd 0.01 · constant",
        "mixed_recipe": False,
        "verdict": REPRODUCED,
    }
    row = {**row, **values}
    return {"shown_scale": int(row["scales"].split(",")[0]), **row}


CLAIMS = pd.DataFrame(
    [
        claim_row(),
        claim_row(
            scales="4096",
            ours_mean_pts=-3.0,
            ours_low_pts=-4.5,
            ours_high_pts=-1.5,
            verdict=REVERSED,
        ),
        claim_row(
            claim="trend",
            statement=TREND_STATEMENT,
            alignment="noise-0.9",
            scales="4096",
            paper_low_pts=2.8,
            paper_high_pts=2.8,
            ours_mean_pts=np.nan,
            ours_low_pts=np.nan,
            ours_high_pts=np.nan,
            interval=None,
            reference_recipe=None,
            method_recipe=None,
            mixed_recipe=None,
            verdict=NOT_IN_STUDY,
        ),
    ]
)
SHARED = "both lr 0.001 · wd 0.01 · constant"


@pytest.fixture
def study(tmp_path):
    """A study folder with the claims table, both answer figures and a few files to link."""
    root = tmp_path / "results/demo"
    write_frame(CLAIMS, root / "tables/paper_vs_ours.parquet")
    for name in ("gap", "alignment_gap", "scaling"):
        (root / "figures").mkdir(parents=True, exist_ok=True)
        (root / f"figures/{name}.png").write_bytes(PNG)
        (root / f"figures/{name}.pdf").write_bytes(b"%PDF-1.4")
    (root / "tables/paper_vs_ours.md").write_text("table")
    (root / "tables/summary.csv").write_text("a,b")
    return root


def answer_of(root: Path, figures=("gap", "alignment_gap"), ext="png", claims=None):
    claims_path = root / "tables/paper_vs_ours.parquet"
    if claims is not None:
        write_frame(claims, claims_path)
    links = sorted((root / "tables").glob("*.[mc]*")) + sorted((root / "figures").glob("*"))
    return read_answer(
        claims_path,
        [root / f"figures/{name}.{ext}" for name in figures],
        links,
        study="demo",
        dataset="flickr8k",
        confidence=0.95,
    )


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of the Markdown verdict table's body rows."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


def test_the_summary_puts_each_claims_estimate_beside_the_papers_number_and_the_verdict(study):
    text = summary_markdown(answer_of(study), study)
    assert text.startswith(f"# {QUESTION}\n")
    assert "study **demo** on the dataset **flickr8k**" in text
    rows = table_rows(text)
    assert [row[0] for row in rows] == ["clip_gap", "clip_gap", "trend"]
    assert rows[0][3:] == [
        "2048",
        "4.1–5.1",
        "4.60 [4.20, 5.00]",
        "seeds + test images",
        SHARED,
        REPRODUCED,
    ]
    assert rows[1][3:] == [
        "4096",
        "4.1–5.1",
        "-3.00 [-4.50, -1.50]",
        "seeds + test images",
        SHARED,
        REVERSED,
    ]
    assert f"- **clip_gap**: {GAP_STATEMENT}" in text
    assert f"- **trend**: {TREND_STATEMENT}" in text
    assert "mean [95% interval]" in text


def test_a_trend_ends_single_claimed_value_and_a_missing_estimate_read_plainly(study):
    trend = table_rows(summary_markdown(answer_of(study), study))[2]
    assert trend[1:] == [
        "concat − xattn_txt2img",
        "clip@noise-0.9",
        "4096",
        "2.8",
        "–",
        "–",
        "–",
        NOT_IN_STUDY,
    ]


def test_the_summary_shows_the_answer_figures_by_relative_path_each_with_its_reading(study):
    text = summary_markdown(answer_of(study), study)
    assert "![gap](figures/gap.png)" in text
    assert "![alignment_gap](figures/alignment_gap.png)" in text
    for name, reading in READING.items():
        assert text.count(reading) == 1, name
    assert text.index("![gap]") < text.index("![alignment_gap]")
    assert str(study) not in text  # nothing absolute: the file reads wherever the study is


def test_the_summary_links_every_table_and_figure_in_each_format(study):
    text = summary_markdown(answer_of(study), study)
    links = text[text.index("## Every table and figure") :]
    assert "  - paper_vs_ours: [md](tables/paper_vs_ours.md)" in links
    assert "  - summary: [csv](tables/summary.csv)" in links
    assert "  - scaling: [pdf](figures/scaling.pdf), [png](figures/scaling.png)" in links
    assert links.index("- Tables:") < links.index("- Figures:")


def test_the_landing_fragment_embeds_the_png_figures_as_data_uris_in_order(study):
    page = landing_html(answer_of(study))
    uris = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="(\w+) figure">', page)
    assert [name for _, name in uris] == ["gap", "alignment_gap"]
    assert all(base64.b64decode(data) == PNG for data, _ in uris)
    assert page.index('class="verdicts"') < page.index("<img")
    for reading in READING.values():
        assert page.count(reading.replace("'", "&#x27;")) == 1


def test_the_landing_fragment_names_the_fix_for_figures_drawn_only_as_pdf(study):
    page = landing_html(answer_of(study, ext="pdf"))
    assert "<img" not in page
    assert "gap.pdf is not shown here: add png to the config key figures.formats" in page


def test_the_landing_table_spans_each_statement_over_its_rows_and_marks_verdicts(study):
    page = landing_html(answer_of(study))
    assert f'rowspan="2"><b>clip_gap</b>: {GAP_STATEMENT}</td>' in page
    assert 'rowspan="1"><b>trend</b>' in page
    assert page.count("<tr>") == 1 + len(CLAIMS)
    assert f'<td class="verdict reproduced">{REPRODUCED}</td>' in page
    assert f'<td class="verdict rejected">{REVERSED}</td>' in page
    assert f'<td class="verdict open">{NOT_IN_STUDY}</td>' in page


def test_statements_are_escaped_for_html_and_markdown(study):
    claims = pd.DataFrame([claim_row(statement="a <b> | c", verdict=IMPRECISE)])
    answer = answer_of(study, claims=claims)
    assert "a &lt;b&gt; | c" in landing_html(answer)
    text = summary_markdown(answer, study)
    assert "- **clip_gap**: a <b> | c" in text
    assert len(table_rows(text)[0]) == 9  # the pipe does not split a cell


def test_a_study_without_claims_says_so_and_names_the_config_key(study):
    answer = answer_of(study, claims=CLAIMS.iloc[:0])
    message = "The study demo judges no claims (add them under the config key `claims`)."
    assert message in summary_markdown(answer, study)
    assert "judges no claims" in landing_html(answer)
    assert "<table" not in landing_html(answer)


def test_a_missing_claims_table_is_an_error_naming_it_and_the_rule_to_rerun(tmp_path):
    missing = tmp_path / "tables/paper_vs_ours.parquet"
    with pytest.raises(AlignfuseError, match=r"paper_vs_ours\.parquet.*rerun the aggregate rule"):
        read_answer(missing, [], [], "demo", "flickr8k", 0.95)


def test_the_summary_command_writes_both_files(study):
    figures = [str(study / "figures/gap.png"), str(study / "figures/alignment_gap.png")]
    main(
        [
            "summary",
            "--claims",
            str(study / "tables/paper_vs_ours.parquet"),
            "--figures",
            *figures,
            "--links",
            *figures,
            "--study",
            "demo",
            "--dataset",
            "flickr8k",
            "--markdown-out",
            str(study / "SUMMARY.md"),
            "--html-out",
            str(study / "answer.html"),
        ]
    )
    assert "![gap](figures/gap.png)" in (study / "SUMMARY.md").read_text(encoding="utf-8")
    assert 'id="study-answer"' in (study / "answer.html").read_text(encoding="utf-8")
    assert not list(study.glob(".*.part"))


def test_a_row_for_every_scale_says_which_scales_estimate_it_shows():
    every = claim_row(scales="2048, 4096", shown_scale=4096, ours_mean_pts=-3.0)
    rows = verdict_rows(pd.DataFrame([claim_row(), every]))
    assert rows["pairs"].tolist() == ["2048", "2048, 4096 (4096 shown)"]


def test_a_claim_of_two_recipes_says_mixed_recipe_and_shows_both(study):
    tuned = "lr 0.003 · wd 0.01 · constant (tuned: lr)"
    claims = pd.DataFrame(
        [claim_row(method="xattn_txt2img_tuned", method_recipe=tuned, mixed_recipe=True)]
    )
    answer = answer_of(study, claims=claims)
    (row,) = table_rows(summary_markdown(answer, study))
    assert row[1] == "concat − xattn_txt2img_tuned (mixed recipe)"
    assert row[-2] == f"lr 0.001 · wd 0.01 · constant; {tuned}"
    assert "concat − xattn_txt2img_tuned (mixed recipe)" in landing_html(answer)
