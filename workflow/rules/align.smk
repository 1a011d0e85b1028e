"""Alignment: contrastive projections and text degradations of a backbone's features, each a
feature set in the features' contract, and the alignment metrics of every feature set trained on.
"""


rule align_contrastive:
    """Project a backbone's features into a shared space fitted on the train split (InfoNCE)."""
    input:
        unpack(
            lambda w: {
                **feature_files(w.dataset, w.backbone, "raw"),
                "captions": f"results/data/{w.dataset}/captions.parquet",
            }
        ),
    output:
        image="results/{study}/aligned/{dataset}/{backbone}@contrastive/image.parquet",
        text="results/{study}/aligned/{dataset}/{backbone}@contrastive/text.parquet",
    log:
        "results/{study}/logs/align/{dataset}/{backbone}@contrastive.log",
    benchmark:
        "results/{study}/benchmarks/align/{dataset}/{backbone}@contrastive.tsv"
    conda:
        CONDA_ENV
    threads: 1
    params:
        settings=as_json(config["alignment"]["contrastive"]),
        code=code_hash("align.contrastive_set"),
    shell:
        "alignfuse align-contrastive --image {input.image} --text {input.text} "
        "--captions {input.captions} --settings {params.settings:q} --threads {threads} "
        "--image-out {output.image} --text-out {output.text} > {log} 2>&1"


rule align_degrade:
    """Degrade the text side of a feature set (rotation, noise or shuffle at one level)."""
    input:
        unpack(base_features),
    output:
        "results/{study}/aligned/{dataset}/{backbone}@{alignment}/text.parquet",
    log:
        "results/{study}/logs/align/{dataset}/{backbone}@{alignment}.log",
    wildcard_constraints:
        alignment=one_of(DEGRADED),
    conda:
        CONDA_ENV
    params:
        seed=config["alignment"]["seed"],
        code=code_hash("align.degraded_set"),
    shell:
        "alignfuse align-degrade --image {input.image} --text {input.text} "
        "--captions {input.captions} --alignment {wildcards.alignment} --seed {params.seed} "
        "--out {output} > {log} 2>&1"


rule alignment_metrics:
    """Measure every feature set the study trains on, on the test split."""
    input:
        [
            f
            for entry in measured_feature_sets()
            for f in (entry["image"], entry["text"])
        ],
        captions=f"results/data/{DATASET}/captions.parquet",
    output:
        parquet="results/{study}/alignment/{dataset}.parquet",
        csv="results/{study}/alignment/{dataset}.csv",
        md=report(
            "results/{study}/alignment/{dataset}.md",
            caption="../report/alignment_metrics_table.rst",
            category="Tables",
            subcategory="alignment",
        ),
    log:
        "results/{study}/logs/align/{dataset}/metrics.log",
    conda:
        CONDA_ENV
    params:
        sets=as_json(measured_feature_sets()),
        code=code_hash("align.measurements"),
    shell:
        "alignfuse alignment-metrics --feature-sets {params.sets:q} --captions {input.captions} "
        "--out {output.parquet} > {log} 2>&1"
