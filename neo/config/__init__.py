"""neo.config: torch-free checks of a composed configuration.

check (unknown keys, did-you-mean, the whole-config check neo-train runs first) and the per-key settings
owners (ema, optim, run, trainer), each validating its own keys before torch loads.
"""
