"""Where a lab opens first (issue 15, Build 4): a JupyterLab datalab's `runtime.start`, a notebook or
folder below its root, becomes JupyterLab's default URL; anything else starts as before, and a start
that is not a plain path inside the lab is refused with the definition."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from datalabs.catalogue.schema import RuntimeSpec
from datalabs.labs.spec import _start_page

JUPYTER = ["jupyter-lab", "--ServerApp.sock={socket}", "--ServerApp.root_dir=/media"]


def runtime(start: str, command=JUPYTER, kind: str = "web") -> RuntimeSpec:
    if kind == "desktop":
        return RuntimeSpec(kind="desktop", desktop={"command": ["ds9"]}, start=start)
    return RuntimeSpec(kind=kind, command=command, start=start)


def test_a_start_below_the_root_is_the_labs_first_page():
    assert (
        _start_page(runtime("/media/notebooks/Get started.ipynb"))
        == "/lab/tree/notebooks/Get%20started.ipynb"
    )
    assert _start_page(runtime("/media/home/my_workspace/results")) == "/lab/tree/home/my_workspace/results"


def test_no_start_or_one_jupyter_cannot_show_changes_nothing():
    assert _start_page(runtime("")) is None
    narrow = [*JUPYTER[:2], "--ServerApp.root_dir=/media/home/my_workspace"]
    assert _start_page(runtime("/media/notebooks/a.ipynb", command=narrow)) is None  # outside its root
    assert _start_page(runtime("/media/notebooks/a.ipynb", command=["my-web-app"])) is None
    assert _start_page(runtime("/media/notebooks/a.ipynb", kind="desktop")) is None


@pytest.mark.parametrize("bad", ["notebooks/a.ipynb", "/media/../etc/passwd", "/media/notebooks/../../x"])
def test_a_start_that_is_not_a_plain_path_inside_the_lab_is_refused(bad):
    with pytest.raises(ValidationError, match="start is a path inside the lab"):
        runtime(bad)
