"""Serve one registered MLflow model version on the lab's socket, under the lab's path.

Run by the `mlflow-model` datalab as `python serve.py SOCKET BASE_URL MODEL_URI`: the model is loaded
with mlflow.pyfunc from the team's tracking server (MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN, which
the platform gives a serving lab of a team whose tracking server runs), then MLflow's own scoring server
(POST invocations, GET health, ping, version) answers under BASE_URL. The platform's proxy in front
admits only the team's members with a token granting `models:invoke`, counts and times the requests.
"""

from __future__ import annotations

import sys

import mlflow.pyfunc
import uvicorn
from mlflow.pyfunc import scoring_server


class UnderBase:
    """ASGI: serve `app` under `base` (the lab's path, which the proxy forwards whole); 404 elsewhere."""

    def __init__(self, app, base: str) -> None:
        self.app, self.base = app, base.rstrip("/")

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            path = scope["path"]
            if not path.startswith(self.base + "/"):
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            scope = {**scope, "path": path[len(self.base) :], "root_path": ""}
            scope.pop("raw_path", None)
        await self.app(scope, receive, send)


def main(argv: list[str]) -> None:
    socket, base, model_uri = argv
    model = mlflow.pyfunc.load_model(model_uri)
    app = UnderBase(scoring_server.init(model), base)
    uvicorn.run(app, uds=socket, log_level="warning", access_log=False, lifespan="off")


if __name__ == "__main__":
    main(sys.argv[1:])
