"""Aggregation of all runs into tables: means and intervals, paired differences, claims vs ours."""

TABLES = [
    "runs",
    "curves",
    "summary",
    "comparisons",
    "paired",
    "paper_vs_ours",
    "alignment_study",
]
# The tables for people: also as Markdown and as HTML (which the report shows inline).
REPORT_TABLES = ["summary", "comparisons", "paired", "paper_vs_ours", "alignment_study"]


rule aggregate:
    """Collect every condition's runs; summarise across seeds; pair methods on seeds."""
    input:
        runs=run_files(),
        predictions=run_files(".predictions"),
        curves=run_files(".curves"),
        test_pairs=f"results/pairs/{DATASET}/test.parquet",
        alignment_metrics=f"results/{STUDY}/alignment/{DATASET}.parquet",
    output:
        expand("results/{{study}}/tables/{table}.parquet", table=TABLES),
        "results/{study}/tables/runs.csv",
        "results/{study}/tables/curves.csv",
        [
            report(
                f"results/{{study}}/tables/{table}.{ext}",
                caption=f"../report/{table}.rst",
                category="Tables",
                subcategory=table,
            )
            for table in REPORT_TABLES
            for ext in ("html", "csv", "md")
        ],
    log:
        "results/{study}/logs/analysis/aggregate.log",
    conda:
        CONDA_ENV
    params:
        settings=as_json(grid.comparison_spec(config)),
        code=code_hash("analysis.tables"),
    shell:
        "alignfuse aggregate --runs {input.runs} --test-pairs {input.test_pairs} "
        "--alignment-metrics {input.alignment_metrics} --settings {params.settings:q} "
        "--out-dir results/{wildcards.study}/tables > {log} 2>&1"
