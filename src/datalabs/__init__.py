"""Datalabs: a self-hostable, cross-domain data exploitation platform."""

__version__ = "0.1.0"
