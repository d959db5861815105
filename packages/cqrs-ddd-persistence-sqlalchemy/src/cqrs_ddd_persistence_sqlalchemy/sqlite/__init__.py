"""SQLite-specific pieces (engine set-up, SpatiaLite, JSON1 operators)."""
