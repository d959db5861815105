"""PostgreSQL-specific pieces."""
