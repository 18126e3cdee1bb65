"""Database: engine and sessions (`engine.py`), ORM models (`models.py`), Alembic migrations."""
