"""A pipeline worker: `slots` threads that claim runs from the queue and execute them through their
engine, plus one maintenance thread that re-queues runs of dead workers, sends the notifications they
left unsent and fires due schedules.

It runs inside `datalabs serve` (the embedded default) and as `datalabs worker` (scale-out). Engines are
created once per worker and kept warm (cwltool keeps each loaded pipeline version).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from datalabs.accounts import service as accounts
from datalabs.config import Settings
from datalabs.db.engine import transaction
from datalabs.db.models import PipelineRun
from datalabs.errors import DatalabsError
from datalabs.pipelines import (
    deliveries,
    documents,
    outputs,
    placement,
    queue,
    runs,
    sandbox,
    schedules,
    tracking,
)
from datalabs.pipelines import inputs as run_inputs
from datalabs.pipelines.engines.base import INFRA, SUCCEEDED, PipelineEngine, Result, RunSpec, get_engine
from datalabs.pipelines.trigger_chain import after_run as fire_run_finished_triggers
from datalabs.redaction import Redactor, for_run
from datalabs.sandbox.policy import Policy
from datalabs.workspaces import inflight
from datalabs.workspaces import service as workspaces
from datalabs.workspaces.upload import too_large

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], *, name: str = "", slots: int = 0
    ):
        self.settings, self.sessions = settings, sessions
        self.cfg = settings.pipelines
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self) % 10000}"
        self.slots = slots or self.cfg.slots
        self._engines: dict[str, PipelineEngine] = {}
        self._engine_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []
        self.sandbox = self.cfg.sandbox and sandbox.available()
        # Outputs count against the workspace quota like uploads; measured at most every usage_ttl seconds.
        self.usage = workspaces.UsageCache(settings.workspaces.usage_ttl)
        if self.cfg.sandbox and not self.sandbox:
            log.warning("pipelines: bubblewrap is missing: CWL tools run WITHOUT a sandbox on this host")

    # ---- lifecycle ------------------------------------------------------------------------------------

    def start(self, maintenance: bool = True) -> None:
        # Warm the default engine before claiming: importing cwltool takes a second or two, and a claimed
        # run must not sit through that without a heartbeat.
        self.engine("cwltool")
        for i in range(self.slots):
            self._spawn(self._slot_loop, f"pipeline-slot-{i}")
        if maintenance:
            self._spawn(self._maintenance_loop, "pipeline-maintenance")

    def _spawn(self, target, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; running runs are cancelled and released back to the queue."""
        self._stop.set()
        self.wake()
        for t in self._threads:
            t.join(timeout)
        for engine in self._engines.values():
            engine.close()

    def wake(self) -> None:
        """A run was queued in this process: claim it now instead of at the next poll."""
        with self._wake:
            self._wake.notify_all()

    def engine(self, name: str) -> PipelineEngine:
        with self._engine_lock:
            if name not in self._engines:
                self._engines[name] = get_engine(name)
            return self._engines[name]

    # ---- loops ----------------------------------------------------------------------------------------

    def _slot_loop(self) -> None:
        while not self._stop.is_set():
            try:
                claim = queue.claim(self.sessions, self.name, self.cfg.lease)
            except Exception:
                log.exception("pipelines: claiming a run failed")
                claim = None
            if claim is None:
                with self._wake:
                    self._wake.wait(self.cfg.poll_interval)
                continue
            try:
                self.execute(claim)
            except Exception as exc:
                log.exception("pipelines: run %s broke its worker slot", claim.run_id)
                queue.release(self.sessions, claim, self._redact(claim.run_id, f"worker error: {exc}"))

    def _maintenance_loop(self) -> None:
        last_schedule = 0.0
        while not self._stop.wait(min(self.cfg.lease / 3, 5.0)):
            try:
                self.reap()
                if time.monotonic() - last_schedule >= self.cfg.scheduler_interval:
                    last_schedule = time.monotonic()
                    if schedules.tick(self.sessions, self.settings):
                        self.wake()
            except Exception:
                log.exception("pipelines: maintenance failed")

    def reap(self) -> None:
        """Runs of dead workers go back to the queue, or end; those that end are told like any other. The
        notifications dead workers decided but did not record sent are sent again, with their keys."""
        for run_id, state in queue.reap(self.sessions):
            if state in queue.FINAL:
                self._notify(run_id)
        deliveries.resume(self.settings, self.sessions, self.name, self.settings.server.public_url)

    def run_once(self) -> bool:
        """Claim and execute one run in the calling thread (tests, benchmarks); False if none was queued."""
        claim = queue.claim(self.sessions, self.name, self.cfg.lease)
        if claim is None:
            return False
        self.execute(claim)
        return True

    # ---- one run --------------------------------------------------------------------------------------

    def execute(self, claim: queue.Claim) -> str:
        """Run one claimed attempt. Its folder (work and output dirs, which the tools wrote) is recorded in
        the journal of temporaries while it runs and removed when it ends, whatever the outcome: after a
        crash, start-up recovery removes it (workspaces/inflight.py)."""
        attempt = runs.run_dir(self.settings, claim.run_id) / f"attempt-{claim.attempt}"
        with inflight.journal(self.settings).hold_path(attempt):
            try:
                return self._execute(claim)
            finally:  # every way out: also a released (retried) or lost attempt's
                tracking.revoke(self.sessions, claim.run_id, claim.attempt)

    def _execute(self, claim: queue.Claim) -> str:
        with transaction(self.sessions) as db:
            run = db.get(PipelineRun, claim.run_id)
            principal = runs.principal_of(db, run.owner)
            doc = documents.materialise(
                self.settings.home / "pipelines" / "documents",
                run.version_id,
                run.version.packed,
                run.version.files,
            )
            workdir = runs.run_dir(self.settings, run.id)
            logfile = runs.log_path(self.settings, run.id)
            logfile.parent.mkdir(parents=True, exist_ok=True)
            _append(logfile, f"=== attempt {claim.attempt} on {self.name} at {_now()} ({run.engine}) ===\n")
            attempt_dir = workdir / f"attempt-{claim.attempt}"
            shutil.rmtree(attempt_dir, ignore_errors=True)
            try:
                # Private snapshots of the inputs (a lab cannot change what the run reads as root now).
                job = run_inputs.to_host(db, self.settings, principal, run.inputs, attempt_dir / "inputs")
                space = workspaces.resolve(db, self.settings, principal, run.output_space, write=True)
            except DatalabsError as exc:
                _append(logfile, f"ERROR {exc.message}\n")
                return self._final(claim, "failed", f"inputs: {exc.message}")
            pipeline_name, engine_name, timeout = run.pipeline.name, run.engine, run.timeout
            cluster = placement.configured(self.settings, run.cluster)
            if cluster is None:
                reason = f"cluster '{run.cluster}' is no longer configured on this platform"
                _append(logfile, f"ERROR {reason}\n")
                return self._final(claim, "failed", reason)
            parallel = documents.main_process(run.version.packed).get("class") == "Workflow"
            identity = accounts.sandbox_identity(db, self.settings, run.owner)
            # MLflow for the tools cwltool runs on this host (Toil's and Slurm nodes' tools: not yet).
            local = engine_name == "cwltool" and not placement.on_slurm(cluster)
            environment = tracking.grant(db, self.settings, run, claim.attempt) if local else {}
        policy = Policy.of(
            self.settings,
            identity,
            self.settings.pipelines.tool_network,
            pids_max=self.settings.sandbox.tool_pids_max,
            api=tracking.api_access(self.settings) if environment else None,
        )
        spec = RunSpec(
            run_id=claim.run_id,
            version_id=run.version_id,
            document=doc,
            job=job,
            workdir=attempt_dir / "work",
            outdir=attempt_dir / "out",
            log=logfile,
            sandbox=self.sandbox,
            parallel=parallel,
            policy=policy,
            cluster=cluster if placement.on_slurm(cluster) else None,
            environment=environment,
        )
        if spec.cluster is not None:
            try:  # the nodes must see the run's folders: checked before anything is submitted
                placement.check_shared(
                    spec.cluster, {"work folder": spec.workdir, "output folder": spec.outdir}
                )
            except placement.NotShared as exc:
                _append(logfile, f"ERROR {exc}\n")
                return self._final(claim, "failed", str(exc))
            _append(logfile, f"=== on cluster {cluster.name} (Slurm) ===\n")
        engine = self.engine(engine_name)
        handle = engine.submit(spec)
        if queue.heartbeat(self.sessions, claim, self.cfg.lease) == "lost":
            engine.cancel(handle)
            return "lost"
        result = self._follow(claim, engine, handle, timeout)
        if result is None:
            return "lost"  # no longer ours: whoever holds it now decides
        if result.state == SUCCEEDED:
            size, free = outputs.size_of(spec.outdir), self.usage.free(space)
            if size > free:
                # A user error, not an infrastructure one: retrying would not make room.
                reason = too_large(f"the output folder ({size:,} bytes)", free).message
                _append(logfile, f"=== failed: {reason}; nothing was written to the workspace ===\n")
                return self._final(claim, "failed", reason)
            try:
                folder, objects = outputs.deliver(
                    space, pipeline_name, claim.run_id, spec.outdir, result.outputs
                )
            except OSError as exc:
                result = Result(INFRA, f"could not move the outputs into the workspace: {exc}")
            else:
                self.usage.add(space, size)
                _append(logfile, f"=== succeeded: outputs in {folder} ===\n")
                shutil.rmtree(attempt_dir, ignore_errors=True)
                return self._final(claim, "succeeded", "", objects, folder)
        if result.state == INFRA:
            _append(logfile, f"=== infrastructure failure: {result.reason} ===\n")
            state = queue.release(self.sessions, claim, self._redact(claim.run_id, result.reason))
            if state == queue.FAILED:
                self._notify(claim.run_id)
            return state
        state = "cancelled" if result.reason == "cancelled" else "failed"
        _append(
            logfile,
            f"=== {state}{': ' + result.reason if result.reason.startswith('timed out') else ''} ===\n",
        )
        return self._final(claim, state, result.reason)

    def _follow(self, claim, engine: PipelineEngine, handle, timeout: float) -> Result | None:
        """Wait for the engine, renewing the lease; stop the run on cancel, timeout or a lost lease."""
        deadline = time.monotonic() + timeout
        beat = max(0.2, min(self.cfg.lease / 3, 5.0))
        while True:
            result = engine.wait(handle, min(beat, max(0.0, deadline - time.monotonic())))
            if result is not None:
                return result
            status = queue.heartbeat(self.sessions, claim, self.cfg.lease)
            if status == "lost":
                engine.cancel(handle)
                engine.wait(handle, 10)
                return None
            if status == "cancel" or self._stop.is_set():
                engine.cancel(handle)
                engine.wait(handle, 10)
                if self._stop.is_set() and status != "cancel":
                    return Result(INFRA, "the worker was stopped")
                return Result("failed", "cancelled")
            if time.monotonic() >= deadline:
                engine.cancel(handle)
                engine.wait(handle, 10)
                return Result("failed", f"timed out after {timeout:.0f} s")

    def _final(self, claim, state: str, reason: str, objects: dict | None = None, folder: str = "") -> str:
        reason = self._redact(claim.run_id, reason)
        tracking.revoke(self.sessions, claim.run_id, claim.attempt)  # before anyone reads the run as ended
        if not queue.finish(self.sessions, claim, state, reason, objects, folder):
            return "lost"
        self._notify(claim.run_id)
        return state

    def _redact(self, run_id: str, reason: str) -> str:
        """The reason as its owner may read it: their run, pipeline and workspaces by name, no server
        paths (engines and tools write the paths they saw)."""
        if "/" not in reason:
            return reason
        with self.sessions() as db:
            run = db.get(PipelineRun, run_id)
            if run is None:
                return reason
            redact: Redactor = for_run(
                self.settings,
                runs.run_dir(self.settings, run.id),
                self.settings.home / "pipelines" / "documents" / f"v{run.version_id}.cwl",
                run.pipeline.name,
                run.owner.name,
                runs.principal_of(db, run.owner).groups,
            )
        return redact(reason)

    def _notify(self, run_id: str) -> None:
        """Tell the owner the run ended (a notice; the e-mail and webhooks asked for), effectively once:
        if this worker dies before recording a delivery sent, another sends it with the same key."""
        fire_run_finished_triggers(self.settings, self.sessions, run_id)  # once per run: trigger_chain.py
        held_for = deliveries.hold(self.settings)
        ids = deliveries.decide(self.sessions, run_id, sender=self.name, held_for=held_for)
        url = self.settings.server.public_url
        deliveries.deliver(self.settings, self.sessions, run_id, ids, url, sender=self.name)


def _append(path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
