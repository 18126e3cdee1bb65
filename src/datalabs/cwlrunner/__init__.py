"""`datalabs cwl-runner`: a CWL runner (cwltool's command-line interface) executing on the platform through
its HTTP API. Light by design: standard library only (PyYAML for YAML jobs), no cwltool, no httpx."""
