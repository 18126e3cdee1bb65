"""The pipeline editor (being built)."""

from __future__ import annotations

from fastapi import APIRouter

from datalabs.web.security import HtmlRoute

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
