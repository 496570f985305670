"""Every public SDK name says what it is and shows how it is used, and its examples run."""

from __future__ import annotations

import doctest

import pytest

import offload_client

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", offload_client.__all__)
def test_every_public_name_has_a_docstring_with_an_example(name: str) -> None:
    doc = getattr(offload_client, name).__doc__ or ""
    assert doc.strip() and ">>>" in doc, f"{name} needs a docstring with an example"


@pytest.mark.parametrize("name", offload_client.__all__)
def test_the_examples_run(name: str) -> None:
    obj = getattr(offload_client, name)
    finder, runner = doctest.DocTestFinder(recurse=False), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(obj, name, globs=vars(offload_client) | {"Where": offload_client.Where}):
        runner.run(test)
    assert runner.failures == 0, f"an example of {name} fails"
