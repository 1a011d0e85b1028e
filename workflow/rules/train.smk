"""Training: one job per condition and seed block trains the block's seeds in one process; a
tuned method's jobs first wait for its tuning, which chooses their settings on dev."""


rule train:
    """Train one seed block of one fusion condition on cached features."""
    input:
        unpack(features_for),
        unpack(tuned_values),
        pairs=expand("results/pairs/{{dataset}}/{split}.parquet", split=SPLITS),
    output:
        runs="results/{study}/runs/{dataset}/{backbone}@{alignment}/{method}/n{n}/seeds{block}.parquet",
        curves="results/{study}/runs/{dataset}/{backbone}@{alignment}/{method}/n{n}/seeds{block}.curves.parquet",
        predictions="results/{study}/runs/{dataset}/{backbone}@{alignment}/{method}/n{n}/seeds{block}.predictions.parquet",
        fused="results/{study}/runs/{dataset}/{backbone}@{alignment}/{method}/n{n}/seeds{block}.fused.parquet",
    log:
        "results/{study}/logs/train/{dataset}/{backbone}@{alignment}/{method}/n{n}/seeds{block}.log",
    benchmark:
        "results/{study}/benchmarks/train/{dataset}/{backbone}@{alignment}/{method}/n{n}/seeds{block}.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]["train"]
    params:
        spec=lambda w: as_json(grid.train_slice(config, w.method, w.block)),
        pairs_dir=lambda w: f"results/pairs/{w.dataset}",
        code=train_code,
        tuned=tuned_arg,
    shell:
        "alignfuse train --image-features {input.image} --text-features {input.text} "
        "--pairs-dir {params.pairs_dir} --n {wildcards.n} --spec {params.spec:q} "
        "--threads {threads} {params.tuned} --label dataset={wildcards.dataset} "
        "--label backbone={wildcards.backbone} --label alignment={wildcards.alignment} "
        "--out {output.runs} --curves-out {output.curves} "
        "--predictions-out {output.predictions} --fused-out {output.fused} > {log} 2>&1"


rule tune:
    """Train one method's grid of training settings on the train split; choose on dev."""
    input:
        unpack(tuning_features),
        pairs=expand(
            "results/pairs/{{dataset}}/{split}.parquet", split=["train", "dev"]
        ),
    output:
        candidates="results/{study}/tuning/{dataset}/{method}.parquet",
        chosen="results/{study}/tuning/{dataset}/{method}.json",
    log:
        "results/{study}/logs/tune/{dataset}/{method}.log",
    benchmark:
        "results/{study}/benchmarks/tune/{dataset}/{method}.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]["train"]
    params:
        spec=lambda w: as_json(grid.tune_slice(config, w.method)),
        pairs_dir=lambda w: f"results/pairs/{w.dataset}",
        code=tune_code,
    shell:
        "alignfuse tune --image-features {input.image} --text-features {input.text} "
        "--pairs-dir {params.pairs_dir} --spec {params.spec:q} --threads {threads} "
        "--label dataset={wildcards.dataset} --out {output.candidates} "
        "--chosen-out {output.chosen} > {log} 2>&1"
