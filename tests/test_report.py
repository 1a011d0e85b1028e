"""End-to-end: the smoke study, then `snakemake --report`; the report holds every figure, the
tables, their captions, the workflow description and the study's configuration."""

import copy
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from workflow_runner import ROOT, load_preset, snakemake

from alignfuse import grid
from alignfuse.analysis.comparisons import declare
from alignfuse.config import validate_config
from alignfuse.figures import FIGURES
from alignfuse.fusion import ATTENTION

pytestmark = pytest.mark.slow

REPORT_TABLES = ["summary", "comparisons", "paired", "paper_vs_ours"]
TABLE_FORMATS = ["html", "csv", "md"]
CAPTIONS = ROOT / "workflow/report"


def study_config(name: str) -> dict:
    """The preset as the workflow sees it: validated, with the schema's defaults filled in."""
    config = copy.deepcopy(load_preset(name))
    return validate_config(config, ROOT / "workflow/schemas/config.schema.yaml")


def shown_format(config: dict) -> str:
    formats = config["figures"]["formats"]
    return "png" if "png" in formats else formats[0]


def report_text(path: Path) -> str:
    """The report's text for plain searching: JSON string escapes undone, tags stripped (captions
    and highlighted code are HTML inside JSON strings), entities decoded, whitespace collapsed."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    text = text.replace('\\"', '"').replace("\\n", "\n")
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^<>]*>", "", text)))


def first_words(caption: Path, count: int = 8) -> str:
    """The caption's opening words as the report renders them (reST markup removed)."""
    words = caption.read_text(encoding="utf-8").replace("``", "").replace("*", "").split()
    return " ".join(words[:count])


@pytest.fixture(scope="module")
def report(smoke_study):
    """The finished smoke study and its report: (working directory, report text)."""
    workdir, configfile = smoke_study
    snakemake(workdir, "--configfile", str(configfile), "--report", "report.html")
    return workdir, report_text(workdir / "report.html")


def test_the_report_shows_every_figure_with_its_caption(report):
    _, text = report
    extension = shown_format(study_config("smoke"))
    for name in FIGURES:
        assert f"{name}.{extension}" in text, name
        assert first_words(CAPTIONS / f"{name}.rst") in text, name
    assert "Figures" in text


def test_the_report_holds_the_tables_in_every_format_with_their_captions(report):
    _, text = report
    for table in REPORT_TABLES:
        for extension in TABLE_FORMATS:
            assert f"{table}.{extension}" in text, f"{table}.{extension}"
        assert first_words(CAPTIONS / f"{table}.rst") in text, table
    assert "Tables" in text


def test_the_report_describes_the_workflow_and_holds_the_configuration(report):
    _, text = report
    config = study_config("smoke")
    assert "does feature alignment decide" in text
    assert f"The answer of the study {config['study']} on the dataset" in text
    for key in config:  # the validated configuration, rendered as JSON
        assert f'"{key}":' in text, key
    assert f'"n_images": {config["dataset"]["synthetic"]["n_images"]}' in text


def declared_in(config: dict) -> dict:
    """The smoke study's declared comparisons by (backbone, alignment, reference, method), as the
    plan declares them."""
    trained = [(c.backbone, c.alignment, c.method, c.n) for c in grid.conditions(config)]
    found = declare(grid.comparison_spec(config), trained)
    return {(c.backbone, c.alignment, c.reference, c.method): c for c in found}


def test_every_output_shows_exactly_the_declared_comparisons(report):
    """The smoke study trains concat, xattn_txt2img, concat_tuned and xattn_txt2img_tuned side
    by side: the tables, the verdicts, the figures' lines, the theory's crossovers and SUMMARY.md
    show the declared pairs, and the one pair of two recipes (declared mixed_recipe) says so."""
    workdir, _ = report
    config = study_config("smoke")
    declared = declared_in(config)
    tables = workdir / "results/smoke/tables"
    table = pd.read_parquet(tables / "comparisons.parquet")
    keys = ["backbone", "alignment", "reference", "method"]
    assert set(table[keys].itertuples(index=False, name=None)) == set(declared)
    mixed = {key for key, c in declared.items() if c.mixed_recipe}
    assert mixed == {("aligned", "raw", "concat", "xattn_txt2img_tuned")}
    tuned = {"concat_tuned", "xattn_txt2img_tuned"}
    for key in set(declared) - mixed:  # tuned against tuned, shared against shared
        assert (key[2] in tuned) == (key[3] in tuned), key

    paired = pd.read_parquet(tables / "paired.parquet")
    expected = {(*key, n) for key, c in declared.items() for n in c.scales}
    assert set(paired[[*keys, "n_train"]].itertuples(index=False, name=None)) == expected
    assert set(paired.loc[paired["mixed_recipe"], "method"]) == {"xattn_txt2img_tuned"}
    assert (paired["n_seeds"] == len(config["seeds"])).all()
    assert "concat − xattn_txt2img_tuned (mixed recipe)" in (tables / "paired.md").read_text()

    claims = pd.read_parquet(tables / "paper_vs_ours.parquet")
    assert set(zip(claims["reference"], claims["method"], strict=True)) == {
        ("concat", "xattn_txt2img"),
        ("concat_tuned", "xattn_txt2img_tuned"),
    }
    study = pd.read_parquet(tables / "alignment_study.parquet")
    assert set(study[keys].itertuples(index=False, name=None)) <= set(declared)

    crossings = pd.read_parquet(tables / "theory_crossovers.parquet")
    crossed = {
        (*r.feature_set.split("@", 1), r.reference, r.method) for r in crossings.itertuples()
    }
    attention = {k for k, c in declared.items() if c.family == ATTENTION and len(c.scales) > 1}
    assert crossed == attention

    from alignfuse.figures.gap import plot

    lines = {line.get_label() for ax in plot(paired, "smoke").axes for line in ax.get_lines()}
    drawn = {label for label in lines if not label.startswith("_")}
    assert drawn == {declared[k].label for k in attention}
    assert "concat − xattn_txt2img_tuned (mixed recipe)" in drawn

    summary = (workdir / "results/smoke/SUMMARY.md").read_text(encoding="utf-8")
    assert "| concat − xattn_txt2img " in summary
    assert "| concat_tuned − xattn_txt2img_tuned " in summary
    assert "| concat − xattn_txt2img_tuned" not in summary  # in no claim


def test_the_studys_claims_are_judged_with_verdicts_and_the_seeds_they_need(report):
    workdir, _ = report
    config = study_config("smoke")
    claims = pd.read_csv(workdir / "results/smoke/tables/paper_vs_ours.csv")
    assert set(claims["claim"]) == {claim["id"] for claim in config["claims"]}
    # one row per scale and one for all of them, per claim and compared method
    rows = sum(len(c["methods"]) * (len(c["scales"]) + 1) for c in config["claims"])
    assert len(claims) == rows
    assert claims["verdict"].notna().all() and claims["interval"].eq("seeds + test images").all()
    assert "seeds for a decisive interval" in (
        workdir / "results/smoke/tables/paper_vs_ours.md"
    ).read_text(encoding="utf-8")


def landing_page(workdir: Path) -> str:
    """The report's global description as the landing page shows it (HTML)."""
    page = (workdir / "report.html").read_text(encoding="utf-8")
    return json.loads(re.search(r"var workflow_desc = (\".*?\");\n", page, re.S).group(1))


def test_the_study_writes_its_answer_to_summary_md(report):
    workdir, _ = report
    root = workdir / "results/smoke"
    text = (root / "SUMMARY.md").read_text(encoding="utf-8")
    assert text.startswith("# Does feature alignment decide")
    claims = pd.read_csv(root / "tables/paper_vs_ours.csv")
    assert (
        text.count(claims["verdict"].iloc[0])
        >= (claims["verdict"] == claims["verdict"].iloc[0]).sum()
    )
    assert (
        "![gap](figures/gap.png)" in text and "![alignment_gap](figures/alignment_gap.png)" in text
    )
    linked = re.findall(r"\]\(([^)]+)\)", text)
    assert "tables/paper_vs_ours.md" in linked and "figures/scaling.pdf" in linked
    assert all((root / path).is_file() for path in linked), linked


def test_the_landing_page_opens_on_the_answer_and_folds_the_configuration_away_at_the_end(report):
    workdir, _ = report
    page = landing_page(workdir)
    order = [
        "does feature alignment decide",
        '<table class="verdicts">',
        'alt="gap figure"',
        'alt="alignment_gap figure"',
        "Every table and figure",
        "<details>",
        "&quot;seeds&quot;",  # the configuration, highlighted
        "</details>",
    ]
    positions = [page.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert "javascript:app.showResultInfo('results/smoke/tables/paper_vs_ours.csv')" in page


CHROMIUM = shutil.which("chromium")
# Appended to a copy of the report: once the report's app has rendered, writes where the verdict
# table and the answer figures lie in the window, and whether each is the element seen there.
PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const box = (selector) => {
    const el = document.querySelector(selector);
    if (!el) return null;
    const r = el.getBoundingClientRect();
    const hit = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);
    return {left: r.left, top: r.top, right: r.right, bottom: r.bottom, seen: el.contains(hit),
            loaded: el.tagName !== "IMG" || (el.complete && el.naturalWidth > 0)};
  };
  const probe = document.createElement("pre");
  probe.id = "first-screen";
  probe.textContent = JSON.stringify({
    viewport: [innerWidth, innerHeight],
    verdicts: box("#study-answer .verdicts-box"),
    gap: box('#study-answer img[alt="gap figure"]'),
    alignment_gap: box('#study-answer img[alt="alignment_gap figure"]'),
    rows: [...document.querySelectorAll("#study-answer td.verdict")].map((td) => td.textContent),
  });
  document.body.appendChild(probe);
}, 2000));
</script>"""


def first_screen(report_html: Path, tmp_path: Path) -> dict:
    """Open the report in headless chromium at 1280x800 and read the probe's measurements."""
    source = report_html.read_text(encoding="utf-8")
    end = source.rindex("</body>")
    page = tmp_path / "report.html"
    page.write_text(source[:end] + PROBE + source[end:], encoding="utf-8")
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,800",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="first-screen">(.*?)</pre>', dom, re.S)
    assert found, f"the report did not render in chromium:\n{dom[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (apt-get install chromium): the report's first screen is "
    "checked in a real browser",
)
def test_the_verdict_table_and_the_answer_figures_are_on_the_first_screen(report, tmp_path):
    workdir, _ = report
    screen = first_screen(workdir / "report.html", tmp_path)
    width, height = screen["viewport"]
    assert width <= 1280 and height <= 800
    for name in ("verdicts", "gap", "alignment_gap"):
        box = screen[name]
        assert box is not None, f"{name} is not on the landing page"
        assert box["loaded"] and box["seen"], (name, box)
        assert 0 <= box["left"] < box["right"] <= width, (name, box, screen["viewport"])
        assert 0 <= box["top"] < box["bottom"] <= height, (name, box, screen["viewport"])
    claims = pd.read_csv(workdir / "results/smoke/tables/paper_vs_ours.csv")
    assert screen["rows"] == list(claims["verdict"])
