"""alignfuse: does feature alignment decide whether concatenation or cross-attention fusion wins?

Run the paper's study with `snakemake --cores all`; other studies with `--configfile`.
"""

from snakemake.utils import min_version

min_version("9.0")


# A study given with --configfile replaces the default study instead of being merged into it.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/align.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/pid.smk"
include: "workflow/rules/theory.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


onstart:
    print_cost()


rule all:
    """The study's tables and figures."""
    default_target: True
    input:
        all_targets(),
