"""Data: the dataset's captions and splits (Flickr8k's checksummed archives, Flickr30k's or
COCO's in Karpathy's splits, your own folder's captions file checked against its images, or the
synthetic dataset's ids), and the matching pairs of every split."""

FLICKR8K = config["dataset"]["flickr8k"]
FOLDER = config["dataset"]["folder"]


if config["dataset"]["kind"] == "synthetic":

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
            code=code_hash("data.synthetic"),
        shell:
            "alignfuse synth-captions --config {params.cfg:q} --out {output} > {log} 2>&1"

elif config["dataset"]["kind"] == "folder":

    rule folder_captions:
        """Your captions file with its splits as one table, every image found and decoded."""
        input:
            captions=FOLDER["captions"],
            images=FOLDER["images"],
        output:
            "results/data/{dataset}/captions.parquet",
        log:
            "results/logs/data/{dataset}/captions.log",
        conda:
            CONDA_ENV
        params:
            cfg=as_json(FOLDER),
            code=code_hash("data.folder"),
        shell:
            "alignfuse folder-captions --config {params.cfg:q} --out {output} > {log} 2>&1"

else:

    localrules:
        download,

    rule download:
        """Fetch one archive of the dataset, or link a local copy; both are checked against the
        checksum."""
        output:
            "results/data/{dataset}/archives/{archive}.zip",
        log:
            "results/logs/data/{dataset}/download_{archive}.log",
        wildcard_constraints:
            archive=one_of(DOWNLOADS),
        retries: 2
        conda:
            CONDA_ENV
        params:
            source=lambda w: as_json(DATASET_CONFIG[w.archive]),
            args=lambda w: download_args(w.archive),
        shell:
            "alignfuse download {params.args} --out {output} > {log} 2>&1"

    if config["dataset"]["kind"] == "flickr8k":

        rule captions:
            """Captions and the official train/dev/test splits as one table."""
            input:
                text="results/data/{dataset}/archives/text.zip",
                images="results/data/{dataset}/archives/images.zip",
            output:
                "results/data/{dataset}/captions.parquet",
            log:
                "results/logs/data/{dataset}/captions.log",
            conda:
                CONDA_ENV
            params:
                on_malformed=FLICKR8K["on_malformed_line"],
                on_bad_image=FLICKR8K["on_bad_image"],
                code=code_hash("data.flickr8k"),
            shell:
                "alignfuse captions --text-zip {input.text} --images-zip {input.images} "
                "--on-malformed {params.on_malformed} --on-bad-image {params.on_bad_image} "
                "--out {output} > {log} 2>&1"

    else:

        rule karpathy_captions:
            """Captions in Karpathy's splits (restval joins train, val is dev) as one table,
            every image found in the archives."""
            input:
                captions="results/data/{dataset}/archives/captions.zip",
                images=IMAGES,
            output:
                "results/data/{dataset}/captions.parquet",
            log:
                "results/logs/data/{dataset}/captions.log",
            conda:
                CONDA_ENV
            params:
                kind=config["dataset"]["kind"],
                on_malformed=DATASET_CONFIG["on_malformed"],
                on_bad_image=DATASET_CONFIG["on_bad_image"],
                code=code_hash("data.karpathy"),
            shell:
                "alignfuse karpathy-captions --kind {params.kind} --captions-zip {input.captions} "
                "--images {input.images} --on-malformed {params.on_malformed} "
                "--on-bad-image {params.on_bad_image} --out {output} > {log} 2>&1"

    if config["dataset"]["kind"] == "flickr30k":

        rule flickr30k_images:
            """Your flickr30k-images archive (or folder) as one zip read in place."""
            input:
                DATASET_CONFIG["images"],
            output:
                "results/data/{dataset}/archives/images.zip",
            log:
                "results/logs/data/{dataset}/images.log",
            conda:
                CONDA_ENV
            params:
                sha256=shlex.join(
                    ["--sha256", DATASET_CONFIG["images_sha256"]]
                    if DATASET_CONFIG["images_sha256"]
                    else []
                ),
                code=code_hash("data.repack"),
            shell:
                "alignfuse flickr30k-images --source {input:q} {params.sha256} --out {output} "
                "> {log} 2>&1"


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
        code=code_hash("data.pairs"),
    shell:
        "alignfuse pairs --captions {input} --seed {params.seed} --out-dir {params.out_dir} "
        "> {log} 2>&1"
