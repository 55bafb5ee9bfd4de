"""The screening page as an Airflow plugin: the api-server mounts `callfilter.ui` under /callfilter and the
UI's navigation links to it.

Every Airflow component loads this module (the plugin loader imports each .py of plugins/ not skipped by
plugins/.airflowignore): it stays light, and `callfilter.ui` (FastAPI, psycopg, templates) is imported by the
api-server on the page's first request only.
"""

from __future__ import annotations

import importlib
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/callfilter"


class LazyApp:
    """An ASGI app that imports the module holding the real one when the first request comes."""

    def __init__(self, module: str, attribute: str = "app") -> None:
        self.module = module
        self.attribute = attribute
        self._app: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = getattr(importlib.import_module(self.module), self.attribute)
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return f"{self.module}:{self.attribute}"


class CallFilterUIPlugin(AirflowPlugin):
    name = "callfilter_ui"
    fastapi_apps = [
        {"app": LazyApp("callfilter.ui"), "url_prefix": URL_PREFIX, "name": "callfilter screening"}
    ]
    external_views = [
        {
            "name": "号码筛查 Screening",
            "href": URL_PREFIX + "/",
            "destination": "nav",
            "url_route": "callfilter",
        }
    ]
