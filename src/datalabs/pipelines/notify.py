"""Notifications when runs end: e-mail over SMTP and signed webhooks.

Webhooks are POSTed as JSON with `X-Datalabs-Timestamp` and `X-Datalabs-Signature: sha256=<hex>`, the
HMAC-SHA256 of `<timestamp>.<body>` under `pipelines.webhook_secret` (default: the platform's secret
key): receivers recompute it and refuse stale timestamps, so a forged or replayed call is detectable.
Every send carries its delivery's idempotency key, the same on every retry: the e-mail's `Message-ID`
(`<key@mail_from's domain>`), the webhook's `X-Datalabs-Delivery` and `Idempotency-Key` headers and its
body's `delivery` field (signed). A receiver that keeps the keys it saw acts on each delivery once.
Webhooks only go to public addresses (or networks the operator allows): see `webhooks`.
Who is told what, effectively once per run, and the record of each delivery: `deliveries`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import smtplib
import time
from abc import ABC, abstractmethod
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from datalabs.config import Settings
from datalabs.pipelines import webhooks

log = logging.getLogger(__name__)


class Notifier(ABC):
    @abstractmethod
    def send(self, event: dict[str, Any]) -> None:
        """Deliver one event (a dict with at least `to`, `subject`, `text`, `run`, and `delivery`: the
        idempotency key, which the message must carry so a receiver can drop a repeat); raise on failure."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class EmailNotifier(Notifier):
    def __init__(self, settings: Settings) -> None:
        self.s = settings.pipelines

    def send(self, event: dict[str, Any]) -> None:
        if not event["to"]:
            return
        if not self.s.smtp_host:  # asked for when one was configured: said in the log, never dropped silently
            raise RuntimeError("no mail server is configured (pipelines.smtp_host): the e-mail was not sent")
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.s.mail_from, ", ".join(event["to"]), event["subject"]
        if event.get("delivery"):
            msg["Message-ID"] = message_id(event["delivery"], self.s.mail_from)
        msg.set_content(event["text"])
        with smtplib.SMTP(self.s.smtp_host, self.s.smtp_port, timeout=self.s.smtp_timeout) as smtp:
            if self.s.smtp_starttls:
                smtp.starttls()
            if self.s.smtp_user:
                smtp.login(self.s.smtp_user, self.s.smtp_password)
            smtp.send_message(msg)


class WebhookNotifier(Notifier):
    def __init__(self, settings: Settings) -> None:
        self.secret = settings.pipelines.webhook_secret or settings.secret_key
        self.timeout = settings.pipelines.webhook_timeout
        self.allowed = settings.pipelines.webhook_allow_networks

    def send(self, event: dict[str, Any]) -> None:
        payload = {"event": event["kind"], "run": event["run"]}
        if event.get("delivery"):
            payload["delivery"] = event["delivery"]  # signed with the rest: a receiver may trust it
        body = json.dumps(payload, sort_keys=True).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Datalabs-Event": event["kind"],
            "X-Datalabs-Timestamp": stamp,
            "X-Datalabs-Signature": sign(self.secret, stamp, body),
        }
        if event.get("delivery"):
            headers["X-Datalabs-Delivery"] = headers["Idempotency-Key"] = event["delivery"]
        for url in event["to"]:
            webhooks.post(url, body, headers, self.timeout, self.allowed)


def message_id(key: str, mail_from: str) -> str:
    """The e-mail's Message-ID for a delivery key: the same on every retry, so mail systems and readers
    that drop duplicate Message-IDs show a repeat once."""
    address = parseaddr(mail_from)[1]
    domain = address.rpartition("@")[2] if "@" in address else ""
    if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", domain):
        domain = "datalabs.invalid"
    return f"<{key}@{domain}>"


def run_event(run, base_url: str = "") -> dict[str, Any]:
    """What a notification says about a finished run."""
    kind = "run.succeeded" if run.state == "succeeded" else f"run.{run.state}"
    info = {
        "id": run.id,
        "pipeline": run.pipeline.name,
        "version": run.version.version,
        "state": run.state,
        "reason": run.reason,
        "owner": run.owner.name,
        "output_dir": run.output_path,
        "url": f"{base_url}/runs/{run.id}",  # the run page
    }
    subject = f"[Datalabs] run {run.id} of {run.pipeline.name} {run.state}"
    text = "\n".join(f"{k}: {v}" for k, v in info.items() if v)
    return {"kind": kind, "run": info, "subject": subject, "text": text}


def wanted(run) -> bool:
    on = run.notify.get("on", []) if run.notify else []
    return (run.state == "succeeded" and "success" in on) or (run.state in ("failed",) and "failure" in on)
