"""Requests to served models (labs whose route has an `invoke_scope`), counted and timed at the proxy for
the platform's /metrics: `datalabs_model_requests_total{lab,code}` and
`datalabs_model_request_seconds{lab}` (from admission to the response's last byte, the platform's path
included). Other labs' traffic is not measured here."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "datalabs_model_requests", "Requests to served models, by lab and status code", ["lab", "code"]
)
LATENCY = Histogram(
    "datalabs_model_request_seconds",
    "Time to answer a request to a served model, through the platform's proxy",
    ["lab"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def observing(send: Callable[[dict], Awaitable[None]], lab_id: str) -> Callable[[dict], Awaitable[None]]:
    """`send`, recording the response's status and, at its last body part, its count and latency."""
    started = time.perf_counter()
    status = ["0"]

    async def observed(message: dict) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            status[0] = str(message["status"])
        await send(message)
        if kind == "http.response.body" and not message.get("more_body", False):
            LATENCY.labels(lab_id).observe(time.perf_counter() - started)
            REQUESTS.labels(lab_id, status[0]).inc()

    return observed


def summary(lab_id: str) -> dict:
    """The lab's requests as this process's proxy saw them (for its page): {"requests": n, "by_code":
    {code: n}, "mean_ms": mean latency or None}."""
    by_code: dict[str, int] = {}
    for metric in REQUESTS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("lab") == lab_id:
                by_code[sample.labels["code"]] = int(sample.value)
    count = total = 0.0
    for metric in LATENCY.collect():
        for sample in metric.samples:
            if sample.labels.get("lab") == lab_id:
                if sample.name.endswith("_count"):
                    count = sample.value
                elif sample.name.endswith("_sum"):
                    total = sample.value
    mean = round(total / count * 1000, 1) if count else None
    return {"requests": sum(by_code.values()), "by_code": dict(sorted(by_code.items())), "mean_ms": mean}
