"""Aggregation of all runs into tables with means and 95% confidence intervals."""

TABLES = ["runs", "summary"]


rule aggregate:
    """Collect every condition's runs; summarise across seeds."""
    input:
        run_files(),
    output:
        expand("results/tables/{table}.{ext}", table=TABLES, ext=["parquet", "csv"]),
        "results/tables/summary.md",
    log:
        "results/logs/analysis/aggregate.log",
    params:
        code=code_hash("analysis"),
    shell:
        "alignfuse aggregate --runs {input} --out-dir results/tables > {log} 2>&1"
