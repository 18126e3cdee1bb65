"""Areas of the platform that are not built yet: each says so plainly, and what it will do."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from datalabs.accounts.principal import Principal
from datalabs.web.render import NAV, page
from datalabs.web.security import HtmlRoute, require_user

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)

COMING = {
    "pipelines": "Run versioned CWL pipelines on your data, on demand or on a schedule, and follow each run.",
    "appstore": "Build your own datalabs from a repository or environment and publish them to the catalogue.",
}


def _placeholder(key: str):
    item = next(i for i in NAV if i.key == key)

    def show(request: Request, _: Principal = Depends(require_user)):
        return page(
            request,
            "placeholder.html",
            title=item.label,
            active=key,
            area=item.label,
            purpose=COMING[key],
        )

    show.__name__ = f"{key}_placeholder"
    return show


for _key in COMING:
    _path = next(i.path for i in NAV if i.key == _key)
    router.add_api_route(_path, _placeholder(_key), methods=["GET"], name=f"{_key}_placeholder")
