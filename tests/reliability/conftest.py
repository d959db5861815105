"""Reliability-suite configuration (fault helpers live in ``rel_faults``)."""
