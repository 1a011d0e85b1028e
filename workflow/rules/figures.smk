"""Figures: one rule and one module each, each drawn from the one table it reads."""

FIGURES = [
    "scaling",
    "gap",
    "params",
    "training_curves",
    "alignment_gap",
    "alignment_metrics",
    "pid_bars",
    "pid_ci_ct",
    "theory_curves",
    "theory_vs_measured",
    "sample_complexity",
]
# figures drawn only when the study decomposes some condition (pid.conditions)
PID_FIGURES = ["pid_bars", "pid_ci_ct"]


localrules:
    figure_scaling,
    figure_gap,
    figure_params,
    figure_training_curves,
    figure_alignment_gap,
    figure_alignment_metrics,
    figure_pid_bars,
    figure_pid_ci_ct,
    figure_theory_curves,
    figure_theory_vs_measured,
    figure_sample_complexity,


rule figure_scaling:
    """Test accuracy against training pairs, one line per method, one panel per backbone."""
    input:
        "results/{study}/tables/summary.parquet",
    output:
        figure_files("scaling", for_report=True),
    log:
        "results/{study}/logs/figures/scaling.log",
    conda:
        CONDA_ENV
    params:
        study=config["study"],
        dpi=config["figures"]["dpi"],
        options=as_json({}),
        code=f"{code_hash('figures.scaling')}:{FIGURE_REGISTRY['scaling']}",
    shell:
        "alignfuse figure scaling --table {input} --study {params.study} --dpi {params.dpi} "
        "--options {params.options:q} --out {output} > {log} 2>&1"


rule figure_gap:
    """The reference − cross-attention (paired on seeds) against training pairs, per backbone."""
    input:
        "results/{study}/tables/paired.parquet",
    output:
        figure_files("gap", for_report=True),
    log:
        "results/{study}/logs/figures/gap.log",
    conda:
        CONDA_ENV
    params:
        study=config["study"],
        dpi=config["figures"]["dpi"],
        options=as_json(gap_options()),
        code=f"{code_hash('figures.gap')}:{FIGURE_REGISTRY['gap']}",
    shell:
        "alignfuse figure gap --table {input} --study {params.study} --dpi {params.dpi} "
        "--options {params.options:q} --out {output} > {log} 2>&1"


rule figure_params:
    """Test accuracy against head parameters at the largest scale, one marker per method."""
    input:
        "results/{study}/tables/summary.parquet",
    output:
        figure_files("params", for_report=True),
    log:
        "results/{study}/logs/figures/params.log",
    conda:
        CONDA_ENV
    params:
        study=config["study"],
        dpi=config["figures"]["dpi"],
        options=as_json({}),
        code=f"{code_hash('figures.params')}:{FIGURE_REGISTRY['params']}",
    shell:
        "alignfuse figure params --table {input} --study {params.study} --dpi {params.dpi} "
        "--options {params.options:q} --out {output} > {log} 2>&1"


rule figure_alignment_gap:
    """The lead of the reference over each method against the degradation level, per kind."""
    input:
        "results/{study}/tables/alignment_study.parquet",
    output:
        figure_files("alignment_gap", for_report=True),
    log:
        "results/{study}/logs/figures/alignment_gap.log",
    conda:
        CONDA_ENV
    params:
        study=config["study"],
        dpi=config["figures"]["dpi"],
        options=as_json({}),
        code=f"{code_hash('figures.alignment_gap')}:{FIGURE_REGISTRY['alignment_gap']}",
    shell:
        "alignfuse figure alignment_gap --table {input} --study {params.study} --dpi {params.dpi} "
        "--options {params.options:q} --out {output} > {log} 2>&1"


rule figure_training_curves:
    """Dev accuracy and attention entropy per epoch, one line per seed, at the largest scale."""
    input:
        "results/{study}/tables/curves.parquet",
    output:
        figure_files("training_curves", for_report=True),
    log:
        "results/{study}/logs/figures/training_curves.log",
    conda:
        CONDA_ENV
    params:
        study=config["study"],
        dpi=config["figures"]["dpi"],
        options=as_json({}),
        code=f"{code_hash('figures.training_curves')}:{FIGURE_REGISTRY['training_curves']}",
    shell:
        "alignfuse figure training_curves --table {input} --study {params.study} --dpi {params.dpi} "
        "--options {params.options:q} --out {output} > {log} 2>&1"


rule figure_alignment_metrics:
    """Each alignment metric against the degradation level, one line per kind."""
    input:
        "results/{study}/tables/alignment_study.parquet",
    output:
        figure_files("alignment_metrics", for_report=True),
    log:
        "results/{study}/logs/figures/alignment_metrics.log",
    conda:
        CONDA_ENV
    params:
        study=config["study"],
        dpi=config["figures"]["dpi"],
        options=as_json({}),
        code=f"{code_hash('figures.alignment_metrics')}:{FIGURE_REGISTRY['alignment_metrics']}",
    shell:
        "alignfuse figure alignment_metrics --table {input} --study {params.study} --dpi {params.dpi} "
        "--options {params.options:q} --out {output} > {log} 2>&1"


rule figure_pid_bars:
    """Stacked R, U_img, U_txt and S of every head's fused view, per feature set."""
    input:
        "results/{study}/tables/pid.parquet",
    output:
        figure_files("pid_bars", for_report=True),
    log:
        "results/{study}/logs/figures/pid_bars.log",
    conda:
        CONDA_ENV
    params:
        study=config["study"],
        dpi=config["figures"]["dpi"],
        options=as_json({}),
        code=f"{code_hash('figures.pid_bars')}:{FIGURE_REGISTRY['pid_bars']}",
    shell:
        "alignfuse figure pid_bars --table {input} --study {params.study} --dpi {params.dpi} "
        "--options {params.options:q} --out {output} > {log} 2>&1"


rule figure_pid_ci_ct:
    """The image's share of the unique information in every head's fused view."""
    input:
        "results/{study}/tables/pid.parquet",
    output:
        figure_files("pid_ci_ct", for_report=True),
    log:
        "results/{study}/logs/figures/pid_ci_ct.log",
    conda:
        CONDA_ENV
    params:
        study=config["study"],
        dpi=config["figures"]["dpi"],
        options=as_json({}),
        code=f"{code_hash('figures.pid_ci_ct')}:{FIGURE_REGISTRY['pid_ci_ct']}",
    shell:
        "alignfuse figure pid_ci_ct --table {input} --study {params.study} --dpi {params.dpi} "
        "--options {params.options:q} --out {output} > {log} 2>&1"


rule figure_theory_curves:
    """Predicted excess risk against training pairs for every method (theory)."""
    input:
        "results/{study}/tables/theory_curves.parquet",
    output:
        figure_files("theory_curves", for_report=True),
    log:
        "results/{study}/logs/figures/theory_curves.log",
    conda:
        CONDA_ENV
    params:
        study=config["study"],
        dpi=config["figures"]["dpi"],
        options=as_json({}),
        code=f"{code_hash('figures.theory_curves')}:{FIGURE_REGISTRY['theory_curves']}",
    shell:
        "alignfuse figure theory_curves --table {input} --study {params.study} --dpi {params.dpi} "
        "--options {params.options:q} --out {output} > {log} 2>&1"


rule figure_theory_vs_measured:
    """Measured test error against training pairs, with fitted learning curves."""
    input:
        "results/{study}/tables/theory_learning_curves.parquet",
    output:
        figure_files("theory_vs_measured", for_report=True),
    log:
        "results/{study}/logs/figures/theory_vs_measured.log",
    conda:
        CONDA_ENV
    params:
        study=config["study"],
        dpi=config["figures"]["dpi"],
        options=as_json({}),
        code=f"{code_hash('figures.theory_vs_measured')}:{FIGURE_REGISTRY['theory_vs_measured']}",
    shell:
        "alignfuse figure theory_vs_measured --table {input} --study {params.study} --dpi {params.dpi} "
        "--options {params.options:q} --out {output} > {log} 2>&1"


rule figure_sample_complexity:
    """Training pairs each head needs against the feature width d, with fitted slopes."""
    input:
        "results/{study}/tables/sample_complexity_points.parquet",
    output:
        figure_files("sample_complexity", for_report=True),
    log:
        "results/{study}/logs/figures/sample_complexity.log",
    conda:
        CONDA_ENV
    params:
        study=config["study"],
        dpi=config["figures"]["dpi"],
        options=as_json({}),
        code=f"{code_hash('figures.sample_complexity')}:{FIGURE_REGISTRY['sample_complexity']}",
    shell:
        "alignfuse figure sample_complexity --table {input} --study {params.study} --dpi {params.dpi} "
        "--options {params.options:q} --out {output} > {log} 2>&1"
