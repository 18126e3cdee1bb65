"""The notebooks Open in Datalab makes are valid nbformat 4.5 documents (written by hand: nbformat's
import is too slow for the platform's start), for every kind of file it makes them for."""

from __future__ import annotations

import nbformat
import pytest

from datalabs.assets import notebooks


@pytest.mark.parametrize("media_type", sorted(notebooks.TEMPLATES))
def test_the_notebook_is_valid_nbformat(media_type):
    nb = nbformat.from_dict(notebooks.notebook(media_type, "/media/data/Vol/a file.dat"))
    nbformat.validate(nb)
    code = nb.cells[1]
    assert code.cell_type == "code" and "path = '/media/data/Vol/a file.dat'" in code.source
    assert nb.metadata.kernelspec.name == "python3"


def test_a_type_without_a_template_is_refused():
    with pytest.raises(KeyError):
        notebooks.first_cell("application/x-unknown", "/media/data/x")
