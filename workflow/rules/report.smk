"""The report: `snakemake --report results/<study>/report.html` gathers every output marked with report()."""


# The global description of the report (a path relative to this file).
report: "../report/workflow.rst"
