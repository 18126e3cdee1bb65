"""Prometheus metrics per cluster, read at each scrape (so every replica answers the same, and nothing is
kept between scrapes): from the database, labs by state and the CPUs, memory and GPUs labs hold; from
each Slurm cluster, the jobs pending in its queue (one squeue per cluster, within SQUEUE_TIMEOUT; a
cluster that does not answer has no sample rather than a wrong one)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from datalabs.clusters.settings import ClusterSettings
from datalabs.config import Settings
from datalabs.db.models import Lab
from datalabs.runtimes.slurm_queue import run_slurm
from datalabs.usage.records import ACTIVE

SQUEUE_TIMEOUT = 5.0  # seconds: a scrape must not hang on a controller that does not answer
HOLDING = ("starting", "running", "stopping")  # states whose resources are allocated on the cluster


class ClusterCollector:
    def __init__(self, settings: Settings, sessions) -> None:
        self.settings, self.sessions = settings, sessions

    def collect(self):
        labs = GaugeMetricFamily(
            "datalabs_cluster_labs", "Labs by cluster and state", labels=["cluster", "state"]
        )
        cpus = GaugeMetricFamily("datalabs_cluster_cpus_allocated", "CPUs held by labs", labels=["cluster"])
        memory = GaugeMetricFamily(
            "datalabs_cluster_memory_allocated_bytes", "Memory held by labs", labels=["cluster"]
        )
        gpus = GaugeMetricFamily("datalabs_cluster_gpus_allocated", "GPUs held by labs", labels=["cluster"])
        pending = GaugeMetricFamily(
            "datalabs_cluster_slurm_pending_jobs",
            "Jobs pending in the Slurm cluster's queue (its partitions, everyone's)",
            labels=["cluster"],
        )
        names = [cluster.name for cluster in self.settings.clusters]
        counts = {(name, state): 0 for name in names for state in ACTIVE}
        held = {name: [0.0, 0, 0] for name in names}
        with self.sessions() as db:
            rows = db.execute(
                select(
                    Lab.cluster,
                    Lab.state,
                    func.count(),
                    func.sum(Lab.cpu),
                    func.sum(Lab.memory),
                    func.sum(Lab.gpu),
                )
                .where(Lab.state.in_(ACTIVE))
                .group_by(Lab.cluster, Lab.state)
            ).all()
        for cluster, state, count, cpu, mem, gpu in rows:
            counts[(cluster, state)] = count
            if state in HOLDING:
                total = held.setdefault(cluster, [0.0, 0, 0])
                total[0] += float(cpu or 0)
                total[1] += int(mem or 0)
                total[2] += int(gpu or 0)
        for (cluster, state), count in sorted(counts.items()):
            labs.add_metric([cluster, state], count)
        for cluster, (cpu, mem, gpu) in sorted(held.items()):
            cpus.add_metric([cluster], cpu)
            memory.add_metric([cluster], mem)
            gpus.add_metric([cluster], gpu)
        for cluster in self.settings.clusters:
            if cluster.backend == "slurm" and (count := _pending_jobs(cluster)) is not None:
                pending.add_metric([cluster.name], count)
        return [labs, cpus, memory, gpus, pending]


def _pending_jobs(cluster: ClusterSettings) -> int | None:
    argv = ["squeue", "-h", "-t", "PENDING", "-o", "%i"]
    if cluster.options.partition:
        argv += ["-p", cluster.options.partition]  # a checked Slurm name list (clusters/settings.py)
    rc, out, _ = asyncio.run(run_slurm(cluster.options.slurm_conf, *argv, timeout=SQUEUE_TIMEOUT))
    return len(out.split()) if rc == 0 else None


def exposition(settings: Settings, sessions) -> bytes:
    """The cluster metrics in Prometheus' text format, appended to the process's own at /metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(settings, sessions))
    return generate_latest(registry)
