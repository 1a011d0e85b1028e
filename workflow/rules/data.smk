"""Flickr8k: checksummed archives (downloaded or the user's own), captions and official splits."""

FLICKR8K = config["dataset"]["flickr8k"]


localrules:
    download,


rule download:
    """Fetch one Flickr8k archive, or link a local copy; both are checked against the checksum."""
    output:
        "results/data/{dataset}/archives/{archive}.zip",
    log:
        "results/logs/data/{dataset}/download_{archive}.log",
    wildcard_constraints:
        archive="images|text",
    retries: 2
    conda:
        CONDA_ENV
    params:
        source=lambda w: as_json(FLICKR8K[w.archive]),
        args=lambda w: download_args(w.archive),
    shell:
        "alignfuse download {params.args} --out {output} > {log} 2>&1"


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
        code=code_hash("flickr8k"),
    shell:
        "alignfuse captions --text-zip {input.text} --images-zip {input.images} "
        "--on-malformed {params.on_malformed} --out {output} > {log} 2>&1"
