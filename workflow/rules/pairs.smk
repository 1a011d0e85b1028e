"""Matching pairs per split; every training scale is a prefix of the same train file."""


rule pairs:
    """Balanced positive and negative image-caption pairs for every split."""
    input:
        "results/data/{dataset}/captions.parquet",
    output:
        expand("results/pairs/{{dataset}}/{split}.parquet", split=SPLITS),
    log:
        "results/logs/pairs/{dataset}.log",
    conda:
        CONDA_ENV
    params:
        seed=config["pairs"]["seed"],
        out_dir=lambda w: f"results/pairs/{w.dataset}",
        code=code_hash("pairs"),
    shell:
        "alignfuse pairs --captions {input} --seed {params.seed} --out-dir {params.out_dir} "
        "> {log} 2>&1"
