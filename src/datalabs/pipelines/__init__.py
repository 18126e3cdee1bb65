"""Pipelines: a registry of versioned CWL documents, a durable run queue in the database, workers that run
them through a `PipelineEngine` (cwltool warm in-process, or Toil), cron schedules and notifications."""
