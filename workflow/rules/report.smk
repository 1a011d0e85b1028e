"""The report: `snakemake --report results/<study>/report.html` gathers every output marked with report()."""


# The global description of the report (a path relative to this file): the landing page, which
# opens on the study's answer.
report: "../report/workflow.rst"


# The figures that answer the question, shown on the landing page and in SUMMARY.md.
ANSWER_FIGURES = ["gap", "alignment_gap"]


localrules:
    study_summary,


def summary_files(study=STUDY):
    """SUMMARY.md and the report's landing fragment."""
    return [f"results/{study}/SUMMARY.md", f"results/{study}/answer.html"]


def shown_figure(name):
    """The file of a figure that the report and SUMMARY.md show (PNG when configured)."""
    files = figure_files(name, study=STUDY)
    return next((f for f in files if f.endswith(".png")), files[0])


def summary_links():
    """Every table and figure file of the study, for SUMMARY.md's links."""
    files = [
        f
        for f in all_targets()
        if f.startswith((f"results/{STUDY}/tables/", f"results/{STUDY}/figures/"))
    ]
    files.append(f"results/{STUDY}/tables/theory.md")
    if pid_files():
        files.append(f"results/{STUDY}/tables/pid.md")
    return files


rule study_summary:
    """The study's answer up front: its verdicts and the figures that answer the question."""
    input:
        claims="results/{study}/tables/paper_vs_ours.parquet",
        figures=[shown_figure(name) for name in ANSWER_FIGURES],
        links=summary_links(),
    output:
        markdown="results/{study}/SUMMARY.md",
        html=report(
            "results/{study}/answer.html",
            caption="../report/answer.rst",
            category="Answer",
        ),
    log:
        "results/{study}/logs/report/summary.log",
    conda:
        CONDA_ENV
    params:
        study=config["study"],
        dataset=DATASET,
        confidence=config["analysis"]["confidence"],
        code=code_hash("analysis.answer"),
    shell:
        "alignfuse summary --claims {input.claims} --figures {input.figures} "
        "--links {input.links} --study {params.study} --dataset {params.dataset} "
        "--confidence {params.confidence} --markdown-out {output.markdown} "
        "--html-out {output.html} > {log} 2>&1"
