"""Server interceptors, one per cross-cutting concern (audit, errors; identity comes next)."""
