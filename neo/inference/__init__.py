"""neo.inference: what runs a trained checkpoint: load it (loading), evaluate it (evaluate), predict with it (predict)."""
