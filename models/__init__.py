"""SQLAlchemy models and data-access functions (session first, never commit)."""
