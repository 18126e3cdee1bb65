"""ORM models, one module per area. Schema changes go through an Alembic migration in `migrations/versions/`.

Every model is imported here so that `datalabs.db.models.X` keeps working and the mappers see each other."""

from datalabs.db.models.accounts import ApiToken, AuthSession, Group, LabCode, LoginFailure, Membership, User
from datalabs.db.models.apps import App, AppEvent, AppVersion
from datalabs.db.models.audit import AuditHead, AuditRecord
from datalabs.db.models.base import Base
from datalabs.db.models.catalogue import CatalogueProblem, Datalab, DatalabVersion
from datalabs.db.models.labs import Lab, LabPortReport, TeamWorkspace, Volume
from datalabs.db.models.oidc import OidcIdentity, OidcState
from datalabs.db.models.pipelines import (
    Pipeline,
    PipelineRun,
    PipelineSchedule,
    PipelineTrigger,
    PipelineVersion,
    RunNotification,
    ScheduleFire,
    TriggerEvent,
)
from datalabs.db.models.platform import Counter, Lease, Notice, UsageRecord
from datalabs.db.models.shares import LabShare

__all__ = [
    "Base",
    "User",
    "Group",
    "Membership",
    "AuthSession",
    "ApiToken",
    "LabCode",
    "LoginFailure",
    "Datalab",
    "DatalabVersion",
    "CatalogueProblem",
    "Lab",
    "LabPortReport",
    "LabShare",
    "OidcIdentity",
    "OidcState",
    "TeamWorkspace",
    "Volume",
    "Pipeline",
    "PipelineVersion",
    "PipelineRun",
    "PipelineSchedule",
    "ScheduleFire",
    "PipelineTrigger",
    "TriggerEvent",
    "RunNotification",
    "App",
    "AppVersion",
    "AppEvent",
    "Counter",
    "Notice",
    "UsageRecord",
    "Lease",
    "AuditRecord",
    "AuditHead",
]
