"""Views: what people read: kubectl-style tables, report formats, the showback HTML."""
