"""neo.models.rtdetr."""
