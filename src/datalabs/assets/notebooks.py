"""Open in Datalab as a notebook: a new notebook beside the user's files whose first cell loads the file
with the library scientists use for it (astropy for FITS, georinex for RINEX, xarray for NetCDF) and
shows a preview (the image, a table's first rows, a time series), already run in the notebook's own
kernel — the variables are there for the next cell.

The notebook is made and run through the lab's Jupyter server (labs/jupyter.py), so it is written by
the lab as its user, never by the platform: the platform only asks. The file's path goes into the code
as a Python string literal (`repr`), so no file name can become code.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath

from datalabs.labs.jupyter import Jupyter, JupyterError

FOLDER = "from-explorer"  # in the personal workspace, beside copied files
MAX_SUFFIX = 1000

_FITS_IMAGE = """\
from astropy.io import fits
from astropy.visualization import ImageNormalize, ZScaleInterval
import matplotlib.pyplot as plt

path = {path}
hdul = fits.open(path)
hdul.info()
hdu = next(h for h in hdul if h.is_image and h.data is not None and h.data.ndim >= 2)
image = hdu.data[(0,) * (hdu.data.ndim - 2)]  # the first plane of a cube
plt.figure(figsize=(6, 6))
plt.imshow(image, origin="lower", cmap="gray", norm=ImageNormalize(image, interval=ZScaleInterval()))
plt.colorbar(label=hdu.header.get("BUNIT", ""))
plt.title(hdu.header.get("OBJECT") or hdu.header.get("TELESCOP") or path.rsplit("/", 1)[-1])
plt.show()
hdu.header
"""

_FITS_TABLE = """\
from astropy.io import fits
from astropy.table import Table

path = {path}
hdul = fits.open(path)
hdul.info()
hdu = next(h for h in hdul if isinstance(h, (fits.BinTableHDU, fits.TableHDU)))
table = Table.read(hdu)
table[:20]
"""

_RINEX = """\
import georinex as gr
import matplotlib.pyplot as plt

path = {path}
print(gr.rinexinfo(path))
data = gr.load(path)
if "sv" in data.dims and data.data_vars:  # observations or navigation: the first quantity per satellite
    name = next(iter(data.data_vars))
    values = data[name].isel(sv=slice(0, 12))
    if data.sizes.get("time", 0) > 1:
        values.plot.line(x="time", hue="sv", figsize=(9, 4))
    else:  # a single epoch: one value per satellite
        values.isel(time=0).to_series().plot.bar(figsize=(9, 4), ylabel=name)
    plt.title(f"{{name}}, first satellites")
    plt.show()
data
"""

_NETCDF = """\
import xarray as xr
import matplotlib.pyplot as plt

path = {path}
ds = xr.open_dataset(path)
plotted = [v for v in ds.data_vars if ds[v].ndim >= 1]
if plotted:
    var = ds[plotted[0]]
    var.isel({{d: 0 for d in var.dims[:-2]}}).plot(figsize=(8, 4) if var.ndim > 1 else None)
    plt.show()
ds
"""

TEMPLATES = {
    "image/fits": _FITS_IMAGE,
    "application/fits": _FITS_TABLE,
    "application/x-rinex": _RINEX,
    "application/x-netcdf": _NETCDF,
}


def first_cell(media_type: str, path: str) -> str:
    """The code that loads and previews the file at `path` (inside the lab)."""
    template = TEMPLATES.get(media_type.lower())
    if template is None:
        raise KeyError(media_type)
    return template.format(path=repr(path))


def notebook(media_type: str, path: str) -> dict:
    """An nbformat 4.5 notebook: a title, and the first cell (written out here rather than with nbformat,
    whose import costs the platform's start a second)."""
    name = PurePosixPath(path).name
    title = {"id": uuid.uuid4().hex[:8], "cell_type": "markdown", "metadata": {}}
    title["source"] = f"# {name}\n\nOpened from the explorer: `{path}`"
    code = {"id": uuid.uuid4().hex[:8], "cell_type": "code", "metadata": {}, "execution_count": None}
    code |= {"outputs": [], "source": first_cell(media_type, path)}
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return {"cells": [title, code], "metadata": {"kernelspec": kernel}, "nbformat": 4, "nbformat_minor": 5}


@dataclass(frozen=True)
class Prepared:
    path: str  # the notebook's path below the Jupyter server's root
    ran: bool  # its first cell ran without an error
    error: str = ""  # why it did not run (the notebook is there all the same)


async def open_as_notebook(jupyter: Jupyter, media_type: str, file_path: str, folder: str) -> Prepared:
    """Make a notebook for the file at `file_path` (inside the lab) in `folder` (below the server's root),
    start its kernel and run its first cell there; the outputs are saved into the notebook."""
    nb = notebook(media_type, file_path)
    path = await _create(jupyter, folder, PurePosixPath(file_path).name, nb)
    wanted = {"path": path, "name": path, "type": "notebook", "kernel": {"name": "python3"}}
    status, session = await jupyter.request("POST", "api/sessions", wanted)
    if status not in (200, 201) or not isinstance(session, dict):
        return Prepared(path, False, f"its kernel did not start (Jupyter answered {status})")
    try:
        kernel_id = str(session["kernel"]["id"])
    except (KeyError, TypeError):
        return Prepared(path, False, "its kernel did not start")
    cell = nb["cells"][1]
    try:
        run = await jupyter.run_cell(kernel_id, cell["source"])
    except JupyterError as exc:
        return Prepared(path, False, str(exc))
    cell["outputs"], cell["execution_count"] = run.outputs, run.execution_count
    status, _ = await jupyter.request("PUT", f"api/contents/{path}", {"type": "notebook", "content": nb})
    if status not in (200, 201):
        return Prepared(path, False, f"its outputs could not be saved (Jupyter answered {status})")
    error = "" if run.status == "ok" else _error_line(run.outputs)
    return Prepared(path, run.status == "ok", error)


async def _create(jupyter: Jupyter, folder: str, name: str, nb: dict) -> str:
    """Save `nb` as `<folder>/<name>.ipynb`, or `<name> (n).ipynb` if taken: an earlier notebook, maybe
    edited since, is never overwritten."""
    status, _ = await jupyter.request("GET", f"api/contents/{folder}?content=0") if folder else (200, None)
    if status == 404:
        status, _ = await jupyter.request("PUT", f"api/contents/{folder}", {"type": "directory"})
        if status not in (200, 201):
            raise JupyterError(f"the folder '{folder}' could not be made (Jupyter answered {status})")
    for n in range(MAX_SUFFIX):
        path = f"{folder}/" if folder else ""
        path += f"{name}.ipynb" if n == 0 else f"{name} ({n}).ipynb"
        status, _ = await jupyter.request("GET", f"api/contents/{path}?content=0")
        if status != 404:
            continue
        status, _ = await jupyter.request("PUT", f"api/contents/{path}", {"type": "notebook", "content": nb})
        if status in (200, 201):
            return path
        raise JupyterError(f"the notebook could not be saved (Jupyter answered {status})")
    raise JupyterError(f"'{folder}' already holds {MAX_SUFFIX} notebooks named like '{name}'")


def _error_line(outputs: list[dict]) -> str:
    for out in outputs:
        if out.get("output_type") == "error":
            return f"its first cell failed: {out.get('ename', '')}: {out.get('evalue', '')}"[:500]
    return "its first cell failed"
