"""Theory: sample-complexity curves from the built heads, and fits of the measured learning curves."""


rule theory:
    """Predicted sample complexity per method and feature set; fitted learning curves; crossovers."""
    input:
        unpack(
            lambda w: {
                "runs": f"results/{w.study}/tables/runs.parquet",
                "comparisons": f"results/{w.study}/tables/comparisons.parquet",
                "features": [
                    f for s in measured_feature_sets() for f in (s["image"], s["text"])
                ],
            }
        ),
    output:
        expand(
            "results/{{study}}/tables/{table}.parquet",
            table=[
                "theory_curves",
                "theory_samples",
                "theory_fits",
                "theory_crossovers",
                "theory_learning_curves",
                "sample_complexity_points",
                "sample_complexity",
                "theory_fit_samples",
            ],
        ),
        md=report(
            "results/{study}/tables/theory.md",
            caption="../report/theory.rst",
            category="Tables",
            subcategory="theory",
        ),
    log:
        "results/{study}/logs/theory/theory.log",
    conda:
        CONDA_ENV
    params:
        sets=as_json(measured_feature_sets()),
        methods=as_json(config["methods"]),
        settings=as_json(config["theory"]),
        reference=config["analysis"]["reference"],
        code=code_hash("theory.stage"),
    shell:
        "alignfuse theory --runs {input.runs} --comparisons {input.comparisons} "
        "--feature-sets {params.sets:q} "
        "--methods {params.methods:q} --settings {params.settings:q} "
        "--reference {params.reference} --out-dir results/{wildcards.study}/tables > {log} 2>&1"
