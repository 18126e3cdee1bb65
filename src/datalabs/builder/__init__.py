"""App builder and app store: sources -> environment -> datalab version; sharing and review."""
