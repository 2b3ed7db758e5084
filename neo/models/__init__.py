"""neo.models."""
