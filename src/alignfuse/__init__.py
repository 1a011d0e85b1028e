"""alignfuse: does feature alignment decide whether concatenation or cross-attention fusion wins?

Importing the package stays light (no torch): the Snakefile imports it on every DAG build.
"""

__version__ = "0.1.0"
