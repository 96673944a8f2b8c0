"""Names that moved between modules still import from where they were, with a warning."""

import importlib

import pytest


@pytest.mark.parametrize(("old", "new", "name"), [
    ("digitrec.preprocess", "digitrec.segment", "split_digits"),
    ("digitrec.preprocess", "digitrec.segment", "Segment"),
    ("digitrec.train", "digitrec.config", "recipe"),
    ("digitrec.train", "digitrec.config", "fine_tune_recipe"),
    ("digitrec.checkpoint", "digitrec.files", "read_jsonl"),
])
def test_a_moved_name_warns_and_is_the_same_object(old: str, new: str, name: str):
    with pytest.warns(DeprecationWarning, match=f"{old}.{name} moved to {new}.{name}"):
        moved = getattr(importlib.import_module(old), name)
    assert moved is getattr(importlib.import_module(new), name)


def test_an_unknown_name_is_still_an_attribute_error():
    import digitrec.preprocess

    with pytest.raises(AttributeError, match="no_such_step"):
        digitrec.preprocess.no_such_step  # noqa: B018
