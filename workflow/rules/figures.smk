"""Figures: one rule and one module each, drawn from the aggregated tables."""

FIGURES = ["scaling"]


localrules:
    figure_scaling,


rule figure_scaling:
    """Test accuracy against training pairs, one line per method, one panel per backbone."""
    input:
        "results/tables/runs.parquet",
    output:
        figure_files("scaling"),
    log:
        "results/logs/figures/scaling.log",
    params:
        study=config["study"],
        dpi=config["figures"]["dpi"],
        code=code_hash("figures.scaling", "figures.style", "analysis"),
    shell:
        "alignfuse figure scaling --runs {input} --study {params.study} --dpi {params.dpi} "
        "--out {output} > {log} 2>&1"
