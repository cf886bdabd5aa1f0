"""Every family declares its defaults, model space and labels, and the checks of those run once,
for all of them, in jaxgen.models.make."""
import pytest

from jaxgen import models
from jaxgen.errors import UserError
from jaxgen.models.base import DataSpec
from jaxgen.presets import family_config

LABELLED, UNLABELLED = DataSpec((8, 8, 1), 10), DataSpec((8, 8, 1), 0)


@pytest.mark.parametrize("family", models.FAMILIES)
def test_a_new_config_is_the_declared_defaults_and_passes_the_declared_checks(family):
    declared = models.declaration(family)
    c = family_config(family, "digits")
    assert dict(c.model) == dict(declared.model, family=family)
    spaces = declared.allowed_spaces(c.model)
    assert not spaces or c.data.space == spaces[0]
    declared.check(c, LABELLED)
    if spaces:
        c.data.space = "no_such_space"
        with pytest.raises(UserError, match=f"needs data.space {spaces[0]}"):
            declared.check(c, LABELLED)


@pytest.mark.parametrize("family", models.FAMILIES)
def test_labels_are_required_where_declared(family):
    declared = models.declaration(family)
    c = family_config(family, "digits")
    if declared.labels == "conditional":
        declared.check(c, UNLABELLED)
        c.model.conditional = True
    if declared.labels == "never":
        declared.check(c, UNLABELLED)
    else:
        with pytest.raises(UserError, match="needs a labelled dataset"):
            declared.check(c, UNLABELLED)


def test_a_model_key_the_family_does_not_declare_is_refused():
    with pytest.raises(KeyError, match="no model key hiden"):
        family_config("vae", "mnist", hiden=(10,))


def test_a_space_that_depends_on_the_likelihood_follows_it():
    c = family_config("vae", "cifar10", likelihood="logistic")
    assert c.data.space == "symmetric"
    with pytest.raises(UserError, match="unknown model.likelihood 'gauss'"):
        family_config("vae", "cifar10", likelihood="gauss")
