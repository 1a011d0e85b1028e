"""End-to-end: the smoke study, then `snakemake --report`; the report holds every figure, the
tables, their captions, the workflow description and the study's configuration."""

import copy
import html
import re
from pathlib import Path

import pandas as pd
import pytest
from workflow_runner import ROOT, load_preset, snakemake

from alignfuse.config import validate_config
from alignfuse.figures import FIGURES

pytestmark = pytest.mark.slow

REPORT_TABLES = ["summary", "paired", "paper_vs_ours"]
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
    assert f"This report is the study {config['study']} on the dataset" in text
    for key in config:  # the validated configuration, rendered as JSON
        assert f'"{key}":' in text, key
    assert f'"n_images": {config["dataset"]["synthetic"]["n_images"]}' in text


def test_the_paired_table_compares_concat_with_every_other_configured_method(report):
    workdir, _ = report
    config = study_config("smoke")
    paired = pd.read_csv(workdir / "results/smoke/tables/paired.csv")
    others = set(config["methods"]) - {config["analysis"]["reference"]}
    assert set(paired["method"]) == others
    assert set(paired["backbone"]) == set(config["backbones"])
    assert set(paired["n_train"]) == set(config["scales"])
    assert (paired["n_seeds"] == len(config["seeds"])).all()


def test_the_studys_claims_are_judged_with_verdicts_and_the_seeds_they_need(report):
    workdir, _ = report
    config = study_config("smoke")
    claims = pd.read_csv(workdir / "results/smoke/tables/paper_vs_ours.csv")
    assert set(claims["claim"]) == {claim["id"] for claim in config["claims"]}
    rows = len(config["claims"][0]["scales"]) + 1  # one per scale, one for all of them
    assert len(claims) == rows
    assert claims["verdict"].notna().all() and claims["interval"].eq("seeds + test images").all()
    assert "seeds for a decisive interval" in (
        workdir / "results/smoke/tables/paper_vs_ours.md"
    ).read_text(encoding="utf-8")
