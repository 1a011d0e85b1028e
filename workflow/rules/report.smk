"""The report: `snakemake --report results/<study>/report.html` gathers every output marked with report()."""


# The global description of the report (a path relative to this file): the landing page, which
# opens on the study's answer.
report: "../report/workflow.rst"


localrules:
    study_summary,


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
