import pytest

from alignfuse.align.names import parse_alignment
from alignfuse.errors import AlignfuseError


@pytest.mark.parametrize(
    ("name", "base", "kind", "level"),
    [
        ("raw", "raw", None, 0.0),
        ("contrastive", "contrastive", None, 0.0),
        ("rotation-0.5", "raw", "rotation", 0.5),
        ("noise-1", "raw", "noise", 1.0),
        ("contrastive+shuffle-0.25", "contrastive", "shuffle", 0.25),
    ],
)
def test_an_alignment_name_spells_its_recipe(name, base, kind, level):
    recipe = parse_alignment(name)
    assert (recipe.base, recipe.kind, recipe.level) == (base, kind, level)
    assert recipe.degraded == (kind is not None)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("rotation-1.5", "the rotation level of 'rotation-1.5' is 1.5"),
        ("shuffle-7", "use a level from 0"),
        ("warped", "'warped' is not an alignment"),
        ("blur-0.5", "'blur-0.5' is not an alignment"),
        ("aligned+noise-0.5", "is not an alignment"),
    ],
)
def test_a_name_that_spells_no_recipe_is_an_error_naming_the_key(name, fragment):
    with pytest.raises(AlignfuseError) as info:
        parse_alignment(name, "grids.degradation.alignments.2")
    assert "config key 'grids.degradation.alignments.2'" in str(info.value)
    assert fragment in str(info.value)
