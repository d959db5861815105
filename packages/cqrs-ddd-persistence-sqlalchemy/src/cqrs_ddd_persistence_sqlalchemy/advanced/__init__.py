"""Advanced patterns: sagas, projections, snapshots, background jobs, command scheduling."""
