"""Team-scoped labs (a datalab with `runtime.scope: team`, e.g. a team's MLflow tracking server) and the
tracking server ordinary labs log to.

A team-scoped lab is launched *for* a team by one of its writing members: it runs as that member, mounts
the team's workspace alone (not the member's own files, nor volumes: the lab serves the whole team), and
every member of the team may use it through the proxy (`proxy.auth.owner_or_team`). One runs per team
and datalab at a time: launching it again answers the running one.

An ordinary lab gets, for its tracking team (the one chosen at launch, else the first of its owner's
teams with a tracking server running), `MLFLOW_TRACKING_URI` (that server through the platform's proxy,
as the lab reaches the platform: its API socket) and `MLFLOW_TRACKING_TOKEN`, a token of its owner with
the `tracking:write` and `models:invoke` scopes alone — it opens the owner's teams' tracking servers and
served models and nothing else (no API call, no lab of the owner's), and is revoked when the lab ends.
MLflow's client sends it as `Authorization: Bearer`; the proxy strips it before forwarding.
"""

from __future__ import annotations

import re

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from datalabs.accounts import auth
from datalabs.accounts.principal import Principal
from datalabs.catalogue.schema import DatalabMeta
from datalabs.config import Settings
from datalabs.db.models import ApiToken, Group, Lab, Membership, TeamWorkspace
from datalabs.db.types import utcnow
from datalabs.errors import Forbidden, Invalid, NotFound

TRACKING_DATALAB = "mlflow"  # the builtin datalab whose team labs are the teams' tracking servers
TRACKING_SCOPE = "tracking:write"
MODEL_DATALAB = "mlflow-model"  # the builtin datalab that serves one registered model version
MODEL_SCOPE = "models:invoke"  # what a token needs to call a served model (labs:write is not enough)
MODEL_URI_RE = re.compile(r"^models:/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}/[1-9][0-9]{0,8}$")
_ACTIVE = ("pending", "starting", "running")


def _membership(db: Session, principal: Principal, team: str) -> str | None:
    """The principal's role in `team` ("member", "owner", "readonly"...), None if not a member."""
    return db.scalar(
        select(Membership.role)
        .join(Group, Membership.group_id == Group.id)
        .where(Group.name == team, Membership.user_id == principal.user.id)
    )


def check_team(db: Session, principal: Principal, meta: DatalabMeta, team: str | None) -> str | None:
    """For a team-scoped datalab: the team it is launched for, checked (named, the principal writes in
    it, it has a workspace). For an ordinary one: the chosen tracking team if named (a team of the
    principal's), else None. The same 404 whether the team does not exist or is not the principal's."""
    scoped = meta.runtime.scope == "team"
    if team is None:
        if scoped:
            raise Invalid(
                f"'{meta.title}' serves a team: name the team to launch it for", code="team_required"
            )
        return None
    role = _membership(db, principal, team)
    if role is None:
        raise NotFound(f"you are not a member of a team '{team}'", code="team_not_found")
    if scoped:
        if role == "readonly":
            raise Forbidden(
                f"read-only members of '{team}' cannot launch labs for it", code="readonly_member"
            )
        has_workspace = db.scalar(select(TeamWorkspace.group_id).join(Group).where(Group.name == team))
        if has_workspace is None:
            raise Invalid(
                f"team '{team}' has no workspace to keep this lab's data in", code="no_team_workspace"
            )
    return team


def check_model(datalab: str, model: str | None) -> str | None:
    """The model version a serving lab serves ("models:/<name>/<version>"), required for the model
    datalab and refused for any other."""
    if datalab != MODEL_DATALAB:
        if model is not None:
            raise Invalid("only a model-serving datalab serves a model", code="not_a_model_datalab")
        return None
    if model is None or not MODEL_URI_RE.fullmatch(model):
        raise Invalid(
            "name the registered model version to serve as models:/<name>/<version>", code="bad_model"
        )
    return model


def active_team_lab(db: Session, datalab: str, team: str, model: str | None = None) -> Lab | None:
    """The team's lab of this datalab (serving this model) that is pending, starting or running, if any."""
    return db.scalar(
        select(Lab)
        .where(Lab.datalab == datalab, Lab.team == team, Lab.model == model, Lab.state.in_(_ACTIVE))
        .limit(1)
    )


def default_tracking_team(db: Session, principal: Principal) -> str | None:
    """The first (by name) of the principal's teams whose tracking server is active."""
    return db.scalar(
        select(Lab.team)
        .where(
            Lab.datalab == TRACKING_DATALAB, Lab.state.in_(_ACTIVE), Lab.team.in_(sorted(principal.groups))
        )
        .order_by(Lab.team)
        .limit(1)
    )


def tracking_env(db: Session, settings: Settings, lab: Lab, api_url: str) -> dict[str, str]:
    """MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN for a lab whose tracking team (an ordinary lab's
    chosen one, a serving lab's own team) has a tracking server running (else nothing): a new
    `tracking:write` + `models:invoke` token, the previous one revoked."""
    team = lab.tracking_team if lab.team is None else lab.team if lab.datalab == MODEL_DATALAB else None
    if team is None:
        return {}
    server = db.scalar(
        select(Lab).where(Lab.datalab == TRACKING_DATALAB, Lab.team == team, Lab.state == "running")
    )
    if server is None:
        return {}
    revoke_tracking_token(db, lab)
    _, secret = auth.create_token(db, settings, lab.owner, _token_name(lab.id), [TRACKING_SCOPE, MODEL_SCOPE])
    db.commit()
    return {
        "MLFLOW_TRACKING_URI": f"{api_url.rstrip('/')}/datalabs/{server.id}",
        "MLFLOW_TRACKING_TOKEN": secret,
        "DATALABS_TRACKING_TEAM": team,
    }


def revoke_tracking_token(db: Session, lab: Lab) -> None:
    """Revoke the lab's tracking token(s) (when it ends or gets a new one); the caller commits."""
    db.execute(
        update(ApiToken)
        .where(
            ApiToken.user_id == lab.owner_id,
            ApiToken.name == _token_name(lab.id),
            ApiToken.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def _token_name(lab_id: str) -> str:
    return f"lab {lab_id} tracking"
