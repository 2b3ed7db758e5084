"""neo's Hydra config tree, shipped as package data. Hydra imports this package to read its YAML, so the
resolvers the YAML uses are registered here first:

* ``${neo.run_id:<run_name>,<debug_mode>}``: a run's folder name (:func:`neo.training.run_folder.run_id`).
"""

from omegaconf import OmegaConf


def _run_id(run_name: object, debug_mode: object = None) -> str:
    from neo.training.run_folder import run_id  # at resolve time: importing conf stays free of neo's modules

    return run_id(run_name, debug_mode)


if not OmegaConf.has_resolver("neo.run_id"):
    OmegaConf.register_new_resolver("neo.run_id", _run_id)
