"""neo.training."""
