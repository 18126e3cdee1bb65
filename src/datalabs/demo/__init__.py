"""Demonstrations that produce data the platform can be watched working on (`datalabs demo ...`)."""
