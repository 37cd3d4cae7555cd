"""Access: the permission table, per-ticket checks, the commands a person may use, attempt limits."""
