"""cloud/web."""
