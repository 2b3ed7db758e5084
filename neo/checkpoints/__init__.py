"""neo.checkpoints: everything about checkpoint files.

format (the one reader and writer), official (official RT-DETR layouts -> neo), pretrained (weights
for a new run), resume (which checkpoint a run continues from), sync (bucket mirroring while training),
load (checkpoint -> model for eval, predict and export).
"""
