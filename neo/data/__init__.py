"""neo.data."""
