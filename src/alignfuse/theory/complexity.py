"""The paper's sample-complexity argument made computable: effective dimensions and predicted risk.

Concatenation's first layer is linear in each modality (p_eff = d_v + d_t) while a cross-attention
score is bilinear in them (p_eff = d_v·d_t at full rank), so a bound ε + C·sqrt(p_eff·log n / n)
needs d_v·d_t / (d_v + d_t) times more samples for the same risk. C and ε are free constants: the
caller fits them to measured curves or draws a band, and nothing here pretends to know them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from alignfuse.errors import AlignfuseError
from alignfuse.fusion import (
    ATTENTION,
    BILINEAR,
    CONCATENATION,
    LATE,
    METHOD_SETTINGS,
    UNIMODAL,
    WEIGHTED_SUM,
    head_class,
    head_family,
    head_reference,
)

# families whose fusion is a linear projection of each modality (p_eff = d_v + d_t)
LINEAR_FAMILIES = (CONCATENATION, WEIGHTED_SUM, LATE, UNIMODAL)
BILINEAR_VARIANTS = ("full", "factored")
FORMS = ("sqrt_log", "linear")
SEARCH_RANGE = (1e1, 1e12)  # samples_needed looks for n here; the bound means little below 10
DEFAULT_N_GRID = np.logspace(2, 7, 51)
REFERENCE = "concat"


def _check_widths(d_image, d_text) -> tuple[int, int]:
    for name, d in (("d_image", d_image), ("d_text", d_text)):
        try:
            whole = not isinstance(d, bool) and int(d) == d and d >= 1
        except (TypeError, ValueError):
            whole = False
        if not whole:
            raise AlignfuseError(f"{name}: {d!r} is not a feature width; pass a positive integer")
    return int(d_image), int(d_text)


def _head_config(head: str, d_image: int, d_text: int, config: Mapping | None) -> dict:
    """Every hyper-parameter of ``head``: its config (param_match resolved) over the defaults."""
    from alignfuse.fusion.build import resolve_config
    from alignfuse.fusion.sizing import hyper_parameters

    config = {k: v for k, v in (config or {}).items() if k not in METHOD_SETTINGS}
    return hyper_parameters(head_class(head), resolve_config(head, d_image, d_text, config))


def _width(head: str, name: str, d_image: int, d_text: int, config: Mapping | None) -> int:
    """The hyper-parameter ``name`` (``dim``, ``rank``) that a family's rule counts with."""
    value = _head_config(head, d_image, d_text, config).get(name)
    if value is None:
        raise AlignfuseError(
            f"head {head!r} of the family {head_family(head)!r} has no hyper-parameter {name!r}, "
            "which its sample-complexity rule counts with; give its constructor that argument"
        )
    return int(value)


def effective_dimension(
    head: str,
    d_image: int,
    d_text: int,
    config: Mapping | None = None,
    bilinear: str = "full",
) -> tuple[int, str]:
    """(p_eff, basis): the number of directions the head must learn from data, and why.

    ``bilinear`` picks how a cross-attention score is counted: "full" treats W_q^T W_k as an
    arbitrary d_v×d_t matrix (the paper's argument); "factored" counts the two projections to the
    query/key width d_k (the head's ``dim``), fewer than d_v·d_t only when d_k is below
    d_v·d_t / (d_v + d_t) (256 at 512/512; the paper's head has d_k = 288).
    """
    d_v, d_t = _check_widths(d_image, d_text)
    if bilinear not in BILINEAR_VARIANTS:
        raise AlignfuseError(
            f"bilinear={bilinear!r} is not a score count; use one of {', '.join(BILINEAR_VARIANTS)}"
        )
    family = head_family(head)
    if family in LINEAR_FAMILIES:
        return d_v + d_t, "d_v + d_t (linear fusion projection)"
    if family == ATTENTION:
        if bilinear == "full":
            return d_v * d_t, "d_v·d_t (full-rank bilinear score)"
        d_k = _width(head, "dim", d_v, d_t, config)
        return (d_v + d_t) * d_k, f"(d_v + d_t)·d_k (factored bilinear score, d_k = {d_k})"
    if family == BILINEAR:
        rank = _width(head, "rank", d_v, d_t, config)
        return (d_v + d_t) * rank, f"(d_v + d_t)·r (low-rank bilinear pooling, r = {rank})"
    raise AlignfuseError(
        f"head {head!r} is of the family {family!r}, which has no sample-complexity rule; add "
        "its rule to alignfuse.theory.complexity"
    )


def parameter_count(head: str, d_image: int, d_text: int, config: Mapping | None = None) -> int:
    """Parameters of the head as built (meta device), so the count never drifts from the code."""
    from alignfuse.fusion.sizing import count_parameters

    d_v, d_t = _check_widths(d_image, d_text)
    full = _head_config(head, d_v, d_t, config)
    try:
        return count_parameters(head_class(head), d_v, d_t, full)
    except TypeError as error:
        raise AlignfuseError(
            f"methods.{head}: {error}; remove the keys its constructor does not take"
        ) from error


def dimension_ratio(d_image: int, d_text: int) -> float:
    """d_v·d_t / (d_v + d_t): how many times more samples a full bilinear score needs.

    256 at 512/512: the paper's ">256×".
    """
    d_v, d_t = _check_widths(d_image, d_text)
    return d_v * d_t / (d_v + d_t)


def _check_form(form: str) -> None:
    if form not in FORMS:
        raise AlignfuseError(f"form={form!r} is not a risk bound; use one of {', '.join(FORMS)}")


def excess_risk(n, p_eff: float, C: float = 1.0, eps_approx: float = 0.0, form: str = "sqrt_log"):
    """ε_approx + C·sqrt(p_eff·log n / n) ("sqrt_log") or ε_approx + C·p_eff / n ("linear").

    Vectorised over ``n`` (n ≥ 1); a scalar ``n`` gives a float.
    """
    _check_form(form)
    values = np.asarray(n, dtype=float)
    if np.any(~np.isfinite(values)) or np.any(values < 1):
        raise AlignfuseError(f"excess_risk: n must be finite sample sizes ≥ 1, got {n!r}")
    if p_eff <= 0 or C <= 0:
        raise AlignfuseError(f"excess_risk: p_eff ({p_eff!r}) and C ({C!r}) must be positive")
    if form == "sqrt_log":
        risk = eps_approx + C * np.sqrt(p_eff * np.log(values) / values)
    else:
        risk = eps_approx + C * p_eff / values
    return float(risk) if risk.ndim == 0 else risk


def samples_needed(
    target: float, p_eff: float, C: float = 1.0, eps_approx: float = 0.0, form: str = "sqrt_log"
) -> float:
    """The smallest n in [10, 10¹²] at which the predicted excess risk reaches ``target``.

    Both forms decrease in n there, so the root of risk(n) − target in log n is unique (brentq).
    inf when the target is at or below ε_approx or not reached by 10¹² samples; 10 when the
    curve is already below the target there.
    """
    _check_form(form)
    if not np.isfinite(target):
        raise AlignfuseError(f"samples_needed: target {target!r} must be a finite excess risk")
    if target <= eps_approx:
        return float("inf")
    low, high = np.log(SEARCH_RANGE)

    def gap(log_n: float) -> float:
        return excess_risk(np.exp(log_n), p_eff, C, eps_approx, form) - target

    if gap(high) > 0:
        return float("inf")
    if gap(low) <= 0:
        return SEARCH_RANGE[0]
    return float(np.exp(brentq(gap, low, high, xtol=1e-12, rtol=1e-12)))


def _methods(methods) -> dict[str, tuple[str, dict]]:
    """label -> (head, hyper-parameters) from head names or the study's ``methods`` mapping.

    A label's spec names its head under ``head`` (default: the label itself, a registry name);
    ``training`` and ``scaling`` are settings of the study, not of the head, and are left out.
    """
    if isinstance(methods, str):
        raise AlignfuseError(f"methods: pass a list of head names or a mapping, not {methods!r}")
    if isinstance(methods, Mapping):
        specs = {label: dict(spec or {}) for label, spec in methods.items()}
    elif isinstance(methods, Iterable):
        specs = {label: {} for label in methods}
    else:
        raise AlignfuseError(f"methods: {methods!r} is not a list of head names or name -> config")
    return {
        label: (
            head_reference({"head": label, **spec}),
            {k: v for k, v in spec.items() if k not in METHOD_SETTINGS},
        )
        for label, spec in specs.items()
    }


def _per_method(value, method: str, what: str) -> float:
    """A constant given once for every method, or per method as a mapping."""
    if isinstance(value, Mapping):
        if method not in value:
            raise AlignfuseError(f"{what}: no value for method {method!r}; add it to the mapping")
        return float(value[method])
    return float(value)


def _variants(bilinear) -> tuple[str, ...]:
    variants = (bilinear,) if isinstance(bilinear, str) else tuple(bilinear)
    if not variants:
        raise AlignfuseError("bilinear: name at least one of 'full', 'factored'")
    return variants


def _method_rows(methods, d_image: int, d_text: int, bilinear) -> list[dict]:
    """One row per (method, score count): cross-attention gets one per variant asked for."""
    variants = _variants(bilinear)
    rows = []
    for label, (head, config) in _methods(methods).items():
        params = parameter_count(head, d_image, d_text, config)
        factored = "dim" in _head_config(head, d_image, d_text, config)
        own = variants if head_family(head) == ATTENTION and factored else variants[:1]
        for variant in own:
            p_eff, basis = effective_dimension(head, d_image, d_text, config, variant)
            method = f"{label} ({variant})" if len(own) > 1 else label
            row = {"method": method, "head": head, "p_eff": p_eff, "basis": basis}
            rows.append({**row, "params": params, "label": label})
    return rows


def predicted_curves(
    methods,
    d_image: int,
    d_text: int,
    n_grid=None,
    C=1.0,
    eps=0.0,
    form: str = "sqrt_log",
    bilinear="full",
) -> pd.DataFrame:
    """Predicted excess risk per method over ``n_grid`` (default 10²..10⁷, 51 points).

    ``methods``: head names, or label -> spec as in the study's ``methods`` (the spec's ``head``
    names the registry head, default the label). ``C`` and ``eps``: one value, or a mapping
    label -> value when fitted per method. ``bilinear``: "full", "factored",
    or both (cross-attention methods are then labelled "name (full)" / "name (factored)").
    Columns: method, head, p_eff, basis, params, form, n, excess_risk (one row per method and n).
    """
    _check_form(form)
    grid = DEFAULT_N_GRID if n_grid is None else np.asarray(n_grid, dtype=float)
    frames = []
    for row in _method_rows(methods, d_image, d_text, bilinear):
        label = row.pop("label")
        c, e = _per_method(C, label, "C"), _per_method(eps, label, "eps")
        risk = excess_risk(grid, row["p_eff"], c, e, form)
        frames.append(pd.DataFrame({**row, "form": form, "n": grid, "excess_risk": risk}))
    columns = ["method", "head", "p_eff", "basis", "params", "form", "n", "excess_risk"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def samples_table(
    methods,
    d_image: int,
    d_text: int,
    target: float,
    C=1.0,
    eps=0.0,
    form: str = "sqrt_log",
    bilinear="full",
    reference: str = REFERENCE,
) -> pd.DataFrame:
    """Samples each method needs to reach excess risk ``target``, and their ratio to ``reference``.

    Columns: method, head, p_eff, basis, params, form, target, n_needed, ratio_to_reference
    (NaN when the reference method is not among ``methods``).
    """
    _check_form(form)
    rows = []
    for row in _method_rows(methods, d_image, d_text, bilinear):
        label = row.pop("label")
        c, e = _per_method(C, label, "C"), _per_method(eps, label, "eps")
        needed = samples_needed(target, row["p_eff"], c, e, form)
        rows.append({**row, "form": form, "target": float(target), "n_needed": needed})
    table = pd.DataFrame(
        rows,
        columns=["method", "head", "p_eff", "basis", "params", "form", "target", "n_needed"],
    )
    base = table.loc[table["method"] == reference, "n_needed"]
    table["ratio_to_reference"] = table["n_needed"] / base.iloc[0] if len(base) else np.nan
    return table
