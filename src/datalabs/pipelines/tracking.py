"""MLflow tracking for pipeline runs (issue 18 Build 3): a run's tools get `MLFLOW_TRACKING_URI` and
`MLFLOW_TRACKING_TOKEN` for its owner's tracking team, so `mlflow.log_metric` in a CWL step just works.

The team is the one named at submit (`tracking_team`, a team of the owner's), else the first (by name) of
the owner's teams whose tracking server (the `mlflow` team lab) runs when the attempt starts; without a
running server for that team, the tools get no MLflow variables. The token is the owner's,
with the scopes of a lab's tracking token alone (`tracking:write`, `models:invoke`: the team's tracking
server and served models, no API call), made for one attempt and revoked when it ends (it also expires
an hour after the run's timeout, should the worker die). Tools reach the platform as labs do: the API
socket bound into their sandbox and forwarded to `http://127.0.0.1:<labs.api_port>` of their own
network namespace (labs/api_socket.py), whose lab paths open team-scoped labs only.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from datalabs.accounts import auth
from datalabs.config import Settings
from datalabs.db.engine import transaction
from datalabs.db.models import ApiToken, Lab, PipelineRun
from datalabs.db.types import utcnow
from datalabs.labs import api_socket, team_labs
from datalabs.pipelines import runs
from datalabs.sandbox.bwrap import ApiAccess

GRACE = 3600  # seconds a token outlives its run's timeout, for a worker that died before revoking it


def grant(db: Session, settings: Settings, run: PipelineRun, attempt: int) -> dict[str, str]:
    """The MLflow variables of this attempt's tools (a new token, committed by the caller), or {} when the
    owner has no team with a tracking server running."""
    if settings.labs.network == "host":  # no API socket is served then: tools would have no way in
        return {}
    team = run.tracking_team or team_labs.default_tracking_team(db, runs.principal_of(db, run.owner))
    if team is None:
        return {}
    server = db.scalar(
        select(Lab).where(Lab.datalab == team_labs.TRACKING_DATALAB, Lab.team == team, Lab.state == "running")
    )
    if server is None:  # pending or starting: nothing to log to yet
        return {}
    _, secret = auth.create_token(
        db,
        settings,
        run.owner,
        token_name(run.id, attempt),
        [team_labs.TRACKING_SCOPE, team_labs.MODEL_SCOPE],
        expires_in=(run.timeout or 0) + GRACE,
    )
    return {
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{settings.labs.api_port}/datalabs/{server.id}",
        "MLFLOW_TRACKING_TOKEN": secret,
        "DATALABS_TRACKING_TEAM": team,
    }


def api_access(settings: Settings) -> ApiAccess:
    """How a tool with MLflow variables reaches the platform: the API socket, forwarded in its sandbox."""
    return ApiAccess(api_socket.socket_dir(settings), settings.labs.api_port)


def revoke(sessions: sessionmaker, run_id: str, attempt: int) -> None:
    """End the attempt's tracking token (if it got one)."""
    with transaction(sessions) as db:
        owner = db.scalar(select(PipelineRun.owner_id).where(PipelineRun.id == run_id))
        db.execute(
            update(ApiToken)
            .where(
                ApiToken.user_id == owner,
                ApiToken.name == token_name(run_id, attempt),
                ApiToken.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def token_name(run_id: str, attempt: int) -> str:
    return f"run {run_id}/{attempt} tracking"
