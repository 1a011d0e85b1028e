"""The documentation holds together: every relative link resolves, the configuration page covers
every key of the schema, every page is reachable from the README, and the README stays short."""

import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CONFIGURATION = ROOT / "docs/configuration.md"
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
PAGES = [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//")


def prose(text: str) -> str:
    """The text with fenced code blocks removed (links and headings there are not Markdown)."""
    return FENCE.sub("", text)


def links(path: Path) -> list[str]:
    """Every link and image target in a page's prose, inline code spans left out."""
    text = CODE_SPAN.sub("", prose(path.read_text(encoding="utf-8")))
    return LINK.findall(text) + HTML_LINK.findall(text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: rendered text, lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "").replace("*", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a page's headings, repeated ones numbered as GitHub does (-1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for _, heading in HEADING.findall(prose(path.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    """The links of ``page`` whose file, or heading anchor, does not exist."""
    broken = []
    for target in links(page):
        if SCHEME.match(target):
            continue  # a web address: not checked offline
        file_part, _, anchor = target.partition("#")
        resolved = (page.parent / file_part).resolve() if file_part else page
        if not resolved.exists():
            broken.append(f"{target}: no file {os.path.relpath(resolved, ROOT)}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with anchor #{anchor} in {resolved.name}")
        elif anchor and resolved.suffix != ".md":
            broken.append(f"{target}: an anchor into a file that is not Markdown")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    """Links and images to files in the repository point at files that exist, and a `#anchor`
    at a heading of the page it names (web addresses are left alone)."""
    assert broken_links(page) == []


def test_a_missing_file_or_heading_is_reported(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A `key` section\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n[fine](other.md#a-key-section) [fine too](#page) ![img](missing.png)\n"
        "[bad anchor](other.md#nowhere) `[in code](missing.md)` [web](https://example.org/x)\n"
        "```\n[in a block](missing.md)\n```\n"
    )
    assert [b.split(":")[0] for b in broken_links(page)] == ["missing.png", "other.md#nowhere"]


def test_anchors_follow_github_slugs():
    assert slug("Reading the intervals and verdicts") == "reading-the-intervals-and-verdicts"
    assert slug("`alignfuse advise`: decide for your own features") == (
        "alignfuse-advise-decide-for-your-own-features"
    )
    assert slug("The task: matching pairs") == "the-task-matching-pairs"
    assert slug("paper_vs_ours, 2.0") == "paper_vs_ours-20"


def resolve(schema: dict, node: dict) -> list[dict]:
    """``node`` and every schema it draws keys from: its ``$ref``, its ``allOf`` members, and the
    ``then`` branches of their ``if``s (a method's keys depend on its head)."""
    nodes = [node]
    if "$ref" in node:
        target = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        nodes += resolve(schema, target)
    for member in node.get("allOf", []):
        nodes += resolve(schema, member)
        if "then" in member:
            nodes += resolve(schema, member["then"])
    return nodes


def schema_keys(schema: dict, node: dict, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every key path below ``node``: properties by name, a map's entries as ``<name>`` (a name
    the user chooses), and an array's items under the array's own path."""
    keys = set()
    for part in resolve(schema, node):
        for name, sub in part.get("properties", {}).items():
            keys.add(path + (name,))
            keys |= schema_keys(schema, sub, path + (name,))
        if isinstance(part.get("additionalProperties"), dict):
            keys |= schema_keys(schema, part["additionalProperties"], path + ("<name>",))
        if isinstance(part.get("items"), dict):
            keys |= schema_keys(schema, part["items"], path)
    return keys


def sections(text: str) -> dict[str, str]:
    """The page's level-2 sections by heading."""
    parts = re.split(r"^## +(.+?)\s*$", prose(text), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def mentioned(path: tuple[str, ...], section: str) -> bool:
    """Some inline code span of ``section``, read as a dotted path without its ``<...>`` parts,
    begins with a tail of ``path`` (its own name, or that name with its parents in front): for
    ``alignment.contrastive.dim``, `dim`, `contrastive.dim` or `alignment.contrastive.dim` do, and
    `contrastive` is mentioned by `contrastive.dim` too; `training.dim` does not."""
    path = tuple(k for k in path if not k.startswith("<"))
    for _, span in CODE_SPAN.findall(section):
        parts = [p for p in span.split(".") if not p.startswith("<")]
        if any(path[-j:] == tuple(parts[:j]) for j in range(1, min(len(parts), len(path)) + 1)):
            return True
    return False


def missing_keys(schema: dict, page: str) -> list[str]:
    """Schema keys that ``page`` does not document under the rule of the test below."""
    by_heading = sections(page)
    missing = []
    for path in sorted(schema_keys(schema, schema)):
        top = path[0]
        section = next((body for head, body in by_heading.items() if f"`{top}`" in head), None)
        if section is None:
            missing.append(f"{top} (no section headed `{top}`)")
        elif len(path) > 1 and not mentioned(path, section):
            missing.append(".".join(path))
    return missing


def test_configuration_page_documents_every_schema_key():
    """Every key of the schema, nested ones and each head's own included, is in docs/configuration.md.

    The rule: each top-level key has a section whose heading names it in backticks (`training`),
    and every key below it is mentioned in that section in backticks, by its name or by a dotted
    path through it whose parents are its own (`lr` or `training.lr`; `contrastive.dim` mentions
    `contrastive` too; a map's entries are `<name>`). So a key documented only under another
    top-level key, or under another parent, does not count; and nothing is written twice within
    one section: `methods.<name>.training.lr` is covered by `lr` in the methods section."""
    schema = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    assert missing_keys(schema, CONFIGURATION.read_text(encoding="utf-8")) == []


def test_an_undocumented_key_is_reported():
    schema = {
        "properties": {
            "training": {"properties": {"lr": {}, "device": {}}},
            "methods": {"additionalProperties": {"allOf": [{"then": {"$ref": "#/$defs/m"}}]}},
            "seeds": {},
            "alignment": {"properties": {"contrastive": {"properties": {"dim": {}, "lr": {}}}}},
        },
        "$defs": {"m": {"properties": {"rank": {}}}},
    }
    page = (
        "## `training`\n\n`training.lr`, `other.device`\n\n## `methods`\n\n`device`\n\n"
        "## `alignment`\n\n`contrastive.dim`, `training.lr`\n"
    )
    assert missing_keys(schema, page) == [
        "alignment.contrastive.lr",
        "methods.<name>.rank",
        "seeds (no section headed `seeds`)",
        "training.device",
    ]


def test_every_page_in_docs_is_linked_from_the_readme():
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(README)}
    assert [p.name for p in PAGES[2:] if p.resolve() not in linked] == []


def test_readme_is_under_250_lines():
    """The README is read in ten minutes; the details live in docs/."""
    assert len(README.read_text(encoding="utf-8").splitlines()) < 250
