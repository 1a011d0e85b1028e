"""Registry of figures: name -> "module:function", imported only when that figure is drawn.

Each figure is one module (shared look in ``style``); a function takes the one table it draws, the
study name and the figure's options (keyword arguments from its rule) and returns a matplotlib
Figure. ``FIGURE_TABLES`` names that table
(``results/tables/{table}.parquet``), so a figure's rule depends on that table alone. Strings keep
this import light for the Snakefile and CLI.
"""

FIGURES = {
    "scaling": "alignfuse.figures.scaling:plot",
    "gap": "alignfuse.figures.gap:plot",
    "params": "alignfuse.figures.params:plot",
    "training_curves": "alignfuse.figures.training_curves:plot",
    "alignment_gap": "alignfuse.figures.alignment_gap:plot",
    "alignment_metrics": "alignfuse.figures.alignment_metrics:plot",
    "pid_bars": "alignfuse.figures.pid_bars:plot",
    "pid_ci_ct": "alignfuse.figures.pid_ci_ct:plot",
    "theory_curves": "alignfuse.figures.theory_curves:plot",
    "theory_vs_measured": "alignfuse.figures.theory_vs_measured:plot",
    "sample_complexity": "alignfuse.figures.sample_complexity:plot",
}
FIGURE_TABLES = {
    "scaling": "summary",
    "gap": "paired",
    "params": "summary",
    "training_curves": "curves",
    "alignment_gap": "alignment_study",
    "alignment_metrics": "alignment_study",
    "pid_bars": "pid",
    "pid_ci_ct": "pid",
    "theory_curves": "theory_curves",
    "theory_vs_measured": "theory_learning_curves",
    "sample_complexity": "sample_complexity_points",
}
