"""Comparisons as declared data: which method label is set against which reference, on which
feature set and at which scales, and whether both sides were trained by the same recipe.

Every output that compares methods (the paired table, the verdicts, the gap and alignment
figures, advise, the theory's crossovers, SUMMARY.md) reads the comparisons declared here, from
three sources: the analysis reference against every label trained by the same recipe on the same
feature set, each claim, and the config's ``comparisons``. Nothing selects methods by head, and
two sides trained by different recipes (one tuned on dev, one on the shared recipe; or tuned on
different grids) are compared only where the claim or entry says ``mixed_recipe: true``, and
then every output says so.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pandas as pd

from alignfuse.align.names import parse_alignment
from alignfuse.analysis.claims import Claim
from alignfuse.analysis.recipes import MIXED, recipe_text
from alignfuse.errors import AlignfuseError

REFERENCE_SOURCE = "analysis.reference"
COLUMNS = [
    "backbone",
    "alignment",
    "reference",
    "method",
    "scales",
    "family",
    "sources",
    "mixed_recipe",
    "reference_recipe",
    "method_recipe",
]


@dataclass(frozen=True)
class Comparison:
    """reference − method on ``backbone``@``alignment`` at each of ``scales``, declared by each of
    ``sources`` (the analysis reference, claim ids, ``comparisons`` ids). ``family`` is the
    compared method's head family; ``mixed_recipe`` says that the two sides were trained by
    different recipes (described in ``reference_recipe`` and ``method_recipe``)."""

    backbone: str
    alignment: str
    reference: str
    method: str
    scales: tuple[int, ...]
    family: str
    sources: tuple[str, ...]
    mixed_recipe: bool = False
    reference_recipe: str = ""
    method_recipe: str = ""

    @property
    def feature_set(self) -> str:
        return f"{self.backbone}@{self.alignment}"

    @property
    def label(self) -> str:
        """reference − method, for people, saying when the recipes differ."""
        text = f"{self.reference} − {self.method}"
        return f"{text} ({MIXED})" if self.mixed_recipe else text


class Declared:
    """The comparisons gathered so far, one per (feature set, reference, method): a pair that
    several sources declare is one comparison over the union of their scales."""

    def __init__(self, labels: dict):
        self.labels = labels
        self.found: dict[tuple, dict] = {}

    def add(self, backbone, alignment, reference, method, scales, source, mixed) -> None:
        key = (backbone, alignment, reference, method)
        entry = self.found.setdefault(key, {"scales": set(), "sources": [], "mixed": mixed})
        entry["scales"] |= set(scales)
        if source not in entry["sources"]:
            entry["sources"].append(source)

    def comparisons(self) -> list[Comparison]:
        return [
            Comparison(
                backbone=backbone,
                alignment=alignment,
                reference=reference,
                method=method,
                scales=tuple(sorted(entry["scales"])),
                family=self.labels[method]["family"],
                sources=tuple(entry["sources"]),
                mixed_recipe=entry["mixed"],
                reference_recipe=recipe_text(self.labels[reference]["recipe"]),
                method_recipe=recipe_text(self.labels[method]["recipe"]),
            )
            for (backbone, alignment, reference, method), entry in sorted(self.found.items())
        ]


def trained_sets(trained) -> dict[tuple[str, str], dict[str, set[int]]]:
    """(backbone, alignment) -> method label -> the scales it is trained at."""
    sets: dict = defaultdict(lambda: defaultdict(set))
    for backbone, alignment, method, n in trained:
        sets[backbone, alignment][method].add(int(n))
    return sets


def check_trained(label: str, trained_labels: set[str], key: str) -> None:
    if label not in trained_labels:
        raise AlignfuseError(
            f"config key '{key}': '{label}' is not a method this study trains (trained: "
            f"{', '.join(sorted(trained_labels))}); name a label under 'methods' that a grid trains"
        )


def recipes_differ(labels: dict, reference: str, method: str) -> bool:
    return labels[reference]["recipe"] != labels[method]["recipe"]


def check_recipes(labels: dict, reference: str, methods, key: str, what: str, allowed: bool):
    """Refuse a comparison whose two sides were trained by different recipes, unless allowed."""
    for method in methods:
        if allowed or not recipes_differ(labels, reference, method):
            continue
        raise AlignfuseError(
            f"config key '{key}': {what} sets {reference} (recipe: "
            f"{recipe_text(labels[reference]['recipe'])}) against {method} (recipe: "
            f"{recipe_text(labels[method]['recipe'])}): their training recipes differ, so "
            "a difference could be the recipe's, not the head's; compare labels trained alike, "
            f"or set {key}.mixed_recipe: true to compare them anyway (every table, figure and "
            "SUMMARY line will then say 'mixed recipe')"
        )


def claim_sets(claim: Claim, sets: dict) -> list[tuple[str, str]]:
    """The feature sets a claim is about: its own, and for a trend claim every trained
    degradation of it (by the claim's kinds) on its backbone."""
    found = [(claim.backbone, claim.alignment)]
    if claim.kind == "trend":
        for backbone, alignment in sorted(sets):
            recipe = parse_alignment(alignment)
            if (
                backbone == claim.backbone
                and recipe.degraded
                and recipe.base == claim.alignment
                and recipe.kind in claim.degradations
            ):
                found.append((backbone, alignment))
    return found


def declare(spec: dict, trained) -> list[Comparison]:
    """Every comparison of a study from ``spec`` (``grid.comparison_spec``: analysis, claims,
    comparisons and each label's family and recipe) and the ``trained`` conditions (backbone,
    alignment, method, n). Each error names the config key and the fix; the plan and
    ``alignfuse aggregate`` run this same function."""
    labels = spec["labels"]
    sets = trained_sets(trained)
    trained_labels = {m for methods in sets.values() for m in methods}
    trained_backbones = {b for b, _ in sets}
    reference = spec["analysis"]["reference"]
    if reference not in labels:
        raise AlignfuseError(
            f"config key 'analysis.reference': '{reference}' is not one of the methods "
            f"(defined: {', '.join(labels)}); name the method label that every other method "
            "trained by the same recipe is compared with"
        )
    check_ids(spec)
    declared = Declared(labels)
    for (backbone, alignment), methods in sorted(sets.items()):
        if reference not in methods:
            continue
        for method in sorted(methods):
            common = methods[reference] & methods[method]
            if method != reference and common and not recipes_differ(labels, reference, method):
                declared.add(
                    backbone, alignment, reference, method, common, REFERENCE_SOURCE, False
                )

    for i, entry in enumerate(spec["claims"]):
        key = f"claims.{i}"
        claim = Claim.from_config(entry, key)
        if claim.backbone not in trained_backbones:
            raise AlignfuseError(
                f"config key '{key}.backbone': '{claim.backbone}' is not a backbone this study "
                f"trains on (trained: {', '.join(sorted(trained_backbones))})"
            )
        check_trained(claim.reference, trained_labels, f"{key}.reference")
        for j, method in enumerate(claim.methods):
            check_trained(method, trained_labels, f"{key}.methods.{j}")
        check_recipes(
            labels, claim.reference, claim.methods, key, f"claim '{claim.id}'", claim.mixed_recipe
        )
        for backbone, alignment in claim_sets(claim, sets):
            for method in claim.methods:
                mixed = recipes_differ(labels, claim.reference, method)
                declared.add(
                    backbone, alignment, claim.reference, method, claim.scales, claim.id, mixed
                )

    for i, entry in enumerate(spec.get("comparisons", [])):
        declare_entry(entry, f"comparisons.{i}", sets, labels, trained_labels, declared)
    return declared.comparisons()


def check_ids(spec: dict) -> None:
    """Claim and comparison ids name what declared a comparison: each is used once."""
    seen = {REFERENCE_SOURCE: "analysis.reference"}
    for section in ("claims", "comparisons"):
        for i, entry in enumerate(spec.get(section, [])):
            key = f"{section}.{i}.id"
            if entry["id"] in seen:
                raise AlignfuseError(
                    f"config key '{key}': '{entry['id']}' is already the id of {seen[entry['id']]}"
                    "; give every claim and comparison an id of its own"
                )
            seen[entry["id"]] = key


def declare_entry(entry: dict, key: str, sets, labels, trained_labels, declared: Declared):
    """One ``comparisons`` entry: its reference − each of its methods on every trained feature
    set among its backbones and alignments (default: all), at its scales (default: every scale
    both sides are trained at)."""
    reference, methods = entry["reference"], entry["methods"]
    if reference in methods:
        raise AlignfuseError(
            f"config key '{key}.methods': it names the reference '{reference}'; leave it out"
        )
    check_trained(reference, trained_labels, f"{key}.reference")
    for j, method in enumerate(methods):
        check_trained(method, trained_labels, f"{key}.methods.{j}")
    allowed = entry.get("mixed_recipe", False)
    check_recipes(labels, reference, methods, key, f"comparison '{entry['id']}'", allowed)
    for which in ("backbones", "alignments"):
        known = {s[0 if which == "backbones" else 1] for s in sets}
        unknown = [x for x in entry.get(which, []) if x not in known]
        if unknown:
            raise AlignfuseError(
                f"config key '{key}.{which}': {unknown} are not trained in this study (trained: "
                f"{', '.join(sorted(known))})"
            )
    found = False
    for (backbone, alignment), trained in sorted(sets.items()):
        if backbone not in entry.get("backbones", [backbone]):
            continue
        if alignment not in entry.get("alignments", [alignment]) or reference not in trained:
            continue
        for method in methods:
            scales = trained[reference] & trained.get(method, set())
            if "scales" in entry:
                scales &= set(entry["scales"])
            if scales:
                found = True
                mixed = recipes_differ(labels, reference, method)
                declared.add(backbone, alignment, reference, method, scales, entry["id"], mixed)
    if not found:
        raise AlignfuseError(
            f"config key '{key}': comparison '{entry['id']}' matches no feature set and scale at "
            f"which the study trains both {reference} and one of {', '.join(methods)}; widen its "
            "backbones, alignments or scales, or add them to a grid"
        )


def comparisons_frame(comparisons: list[Comparison]) -> pd.DataFrame:
    """The declared comparisons as a table, one row each (scales and sources as lists)."""
    rows = [
        {**c.__dict__, "scales": list(c.scales), "sources": list(c.sources)} for c in comparisons
    ]
    return pd.DataFrame(rows, columns=COLUMNS)
