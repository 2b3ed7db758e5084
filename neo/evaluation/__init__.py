"""neo.evaluation."""
