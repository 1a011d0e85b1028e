"""Frozen encoder features cached to Parquet, once per (dataset, encoder, modality).

Encoders with ``tokens: true`` also write their token sequences, in the same pass; the synthetic
encoders generate theirs from the latent-variable model.
"""

TOKEN_ENCODERS = [name for name, spec in config["encoders"].items() if spec["tokens"]]
POOLED_ENCODERS = [name for name in config["encoders"] if name not in TOKEN_ENCODERS]


if config["dataset"]["kind"] == "synthetic":

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
            code=code_hash("features.synthetic"),
        shell:
            "alignfuse synth-features --config {params.cfg:q} --encoder {wildcards.encoder} "
            "--rotation {params.rotation} --image-out {output.image} --text-out {output.text} "
            "> {log} 2>&1"

else:

    localrules:
        fetch_weights,

    rule fetch_weights:
        """Put an encoder's weights in the library cache (run where there is internet)."""
        output:
            "results/weights/{encoder}.json",
        log:
            "results/logs/weights/{encoder}.log",
        conda:
            CONDA_ENV
        params:
            encoder=lambda w: as_json(grid.encoder_slice(config, w.encoder)),
        shell:
            "alignfuse fetch-weights --encoder {params.encoder:q} --out {output} > {log} 2>&1"

    rule features:
        """Encode every image or caption of the dataset with one encoder."""
        input:
            unpack(feature_inputs),
        output:
            features="results/features/{dataset}/{encoder}/{modality}.parquet",
        log:
            "results/logs/features/{dataset}/{encoder}/{modality}.log",
        benchmark:
            "results/benchmarks/features/{dataset}/{encoder}/{modality}.tsv"
        wildcard_constraints:
            encoder=one_of(POOLED_ENCODERS),
        conda:
            CONDA_ENV
        threads: config["threads"]["features"]
        params:
            encoder=lambda w: as_json(grid.encoder_slice(config, w.encoder)),
            images_arg=lambda w, input: (
                f"--images-zip {input.images}" if w.modality == "image" else ""
            ),
            tokens_arg=lambda w, output: (
                f"--tokens-out {output.tokens}" if "tokens" in output.keys() else ""
            ),
            on_bad_image=FLICKR8K["on_bad_image"],
            code=code_hash("features.extraction"),
        shell:
            "alignfuse features --encoder {params.encoder:q} --modality {wildcards.modality} "
            "--captions {input.captions} {params.images_arg} --workers {threads} --threads {threads} "
            "--on-bad-image {params.on_bad_image} {params.tokens_arg} --out {output.features} > {log} 2>&1"

    use rule features as features_with_tokens with:
        output:
            features="results/features/{dataset}/{encoder}/{modality}.parquet",
            tokens="results/features/{dataset}/{encoder}/{modality}_tokens.parquet",
        wildcard_constraints:
            encoder=one_of(TOKEN_ENCODERS),
