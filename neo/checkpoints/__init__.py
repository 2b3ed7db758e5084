"""neo.checkpoints: everything about checkpoint files.

format (the one reader and writer), official (official RT-DETR layouts -> neo), pretrained (weights
for a new run, a PResNet backbone's own file included), listing (a run's checkpoints locally and in the
bucket, newest first by one rule; torch-free), resume (which checkpoint a run continues from), sync
(bucket mirroring while training), load (checkpoint -> model for eval, predict and export).
"""
