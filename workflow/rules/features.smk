"""Frozen encoder features cached to Parquet, once per (dataset, encoder, modality).

Encoders with ``tokens: true`` also write their token sequences, in a job of their own, so that
turning tokens on leaves the pooled features (and everything trained on them) alone; the
synthetic encoders generate their features from the latent-variable model.
"""

TOKEN_ENCODERS = [name for name, spec in config["encoders"].items() if spec["tokens"]]


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
            cfg=lambda w: as_json(grid.synthetic_generator(config, w.encoder)),
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
        input:
            unpack(weights_file_input),
        output:
            "results/weights/{encoder}.json",
        log:
            "results/logs/weights/{encoder}.log",
        conda:
            CONDA_ENV
        params:
            encoder=lambda w: as_json(grid.encoder_slice(config, w.encoder)),
            modalities=lambda w: " ".join(
                f"--modality {m}" for m in grid.encoder_modalities(config, w.encoder)
            ),
            plugin=encoder_plugin_hash,
        shell:
            "alignfuse fetch-weights --encoder {params.encoder:q} {params.modalities} "
            "--out {output} > {log} 2>&1"

    rule features:
        """Encode every image or caption of the dataset with one encoder: pooled features, or
        (as the rule ``tokens``) the token sequences of an encoder with ``tokens: true``.
        """
        input:
            unpack(feature_inputs),
        output:
            "results/features/{dataset}/{encoder}/{modality}.parquet",
        log:
            "results/logs/features/{dataset}/{encoder}/{modality}.log",
        benchmark:
            "results/benchmarks/features/{dataset}/{encoder}/{modality}.tsv"
        conda:
            CONDA_ENV
        threads: config["threads"]["features"]
        resources:
            # how many images or captions per forward pass: a resource, not a param, since it
            # changes speed and memory but not the features, and must rerun nothing
            encoder_batch=lambda w: config["encoders"][w.encoder]["batch_size"],
        params:
            encoder=lambda w: as_json(grid.encoder_slice(config, w.encoder)),
            images_arg=lambda w, input: (
                f"--images {input.images} --image-key {IMAGE_KEY}"
                if w.modality == "image"
                else ""
            ),
            out_arg=lambda w, output: (
                f"--tokens-out {output[0]}"
                if output[0].endswith("_tokens.parquet")
                else f"--out {output[0]}"
            ),
            on_bad_image=ON_BAD_IMAGE,
            plugin=encoder_plugin_hash,
            code=code_hash("features.extraction"),
        shell:
            "alignfuse features --encoder {params.encoder:q} --modality {wildcards.modality} "
            "--captions {input.captions} {params.images_arg} --workers {threads} --threads {threads} "
            "--batch-size {resources.encoder_batch} --on-bad-image {params.on_bad_image} "
            "{params.out_arg} > {log} 2>&1"

    use rule features as tokens with:
        output:
            "results/features/{dataset}/{encoder}/{modality}_tokens.parquet",
        log:
            "results/logs/features/{dataset}/{encoder}/{modality}_tokens.log",
        benchmark:
            "results/benchmarks/features/{dataset}/{encoder}/{modality}_tokens.tsv"
        wildcard_constraints:
            encoder=one_of(TOKEN_ENCODERS),
