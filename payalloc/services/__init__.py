"""Use cases: one function per user action, each one write transaction."""
