"""neo.storage."""
