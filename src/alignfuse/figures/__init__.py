"""Registry of figures: name -> "module:function", imported only when that figure is drawn.

Each figure is one module (shared look in ``style``); a function takes the runs table and the study
name and returns a matplotlib Figure. Strings keep this import light for the Snakefile and CLI.
"""

FIGURES = {
    "scaling": "alignfuse.figures.scaling:plot",
}
