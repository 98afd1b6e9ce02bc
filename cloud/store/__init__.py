"""cloud/store."""
