"""Modality contributions: partial information decomposition of trained heads' test behaviour."""


rule pid:
    """Decompose one condition's head: its prediction and its fused representation, per seed."""
    input:
        unpack(pid_inputs),
    output:
        "results/{study}/pid/{dataset}/{backbone}@{alignment}/{method}/n{n}.parquet",
    log:
        "results/{study}/logs/pid/{dataset}/{backbone}@{alignment}/{method}/n{n}.log",
    benchmark:
        "results/{study}/benchmarks/pid/{dataset}/{backbone}@{alignment}/{method}/n{n}.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]["pid"]
    params:
        settings=as_json({k: v for k, v in config["pid"].items() if k != "conditions"}),
        head=head_of,
        code=code_hash("pid.stage"),
    shell:
        "alignfuse pid-condition --image-features {input.image} --text-features {input.text} "
        "--captions {input.captions} --test-pairs {input.test_pairs} --runs {input.runs} "
        "--predictions {input.predictions} --fused {input.fused} --settings {params.settings:q} "
        "--label dataset={wildcards.dataset} --label backbone={wildcards.backbone} "
        "--label alignment={wildcards.alignment} --label method={wildcards.method} "
        "--label head={params.head} --label n_train={wildcards.n} --workers {threads} "
        "--out {output} > {log} 2>&1"


rule pid_table:
    """The study's PID table: each term per condition, view and k, with its noise floor."""
    input:
        pid_files(),
    output:
        table="results/{study}/tables/pid.parquet",
        csv="results/{study}/tables/pid.csv",
        md=report(
            "results/{study}/tables/pid.md",
            caption="../report/pid.rst",
            category="Tables",
            subcategory="pid",
        ),
    log:
        "results/{study}/logs/pid/table.log",
    conda:
        CONDA_ENV
    params:
        code=code_hash("pid.stage"),
    shell:
        "alignfuse pid-table --conditions {input} --out {output.table} > {log} 2>&1"
