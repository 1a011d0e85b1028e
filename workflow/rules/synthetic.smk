"""Synthetic datasets: the latent-variable generator writes captions and features directly."""


rule synthetic_captions:
    """Captions table and splits of the synthetic dataset."""
    output:
        "results/data/{dataset}/captions.parquet",
    log:
        "results/logs/data/{dataset}/captions.log",
    conda:
        CONDA_ENV
    params:
        cfg=as_json(config["dataset"]["synthetic"]),
        code=code_hash("synthetic"),
    shell:
        "alignfuse synth-captions --config {params.cfg:q} --out {output} > {log} 2>&1"


rule synthetic_features:
    """Image and text features of one synthetic encoder (its rotation sets the alignment)."""
    output:
        image="results/features/{dataset}/{encoder}/image.parquet",
        text="results/features/{dataset}/{encoder}/text.parquet",
    log:
        "results/logs/features/{dataset}/{encoder}.log",
    conda:
        CONDA_ENV
    params:
        cfg=as_json(config["dataset"]["synthetic"]),
        rotation=lambda w: config["encoders"][w.encoder].get("rotation", 0.0),
        code=code_hash("synthetic"),
    shell:
        "alignfuse synth-features --config {params.cfg:q} --encoder {wildcards.encoder} "
        "--rotation {params.rotation} --image-out {output.image} --text-out {output.text} "
        "> {log} 2>&1"
