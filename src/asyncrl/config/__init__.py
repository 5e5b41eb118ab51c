"""Typed, frozen run configuration: the fields and their help (`fields`), conversion of
values from files and flags (`coerce`), and the rules (`validate`)."""
from .coerce import coerce_item, load_config_file
from .fields import (ACTIVATIONS, ALGOS, CLIP_REWARDS, DEFAULT_SYNC_ENVS, DEVICES, EXECUTORS, FUSED, NETS,
                     OPTIMIZERS, SHARED_TORSO, START_METHODS, VEC_ENVS, Config, coerce_field, cuda_available)
from .validate import register

__all__ = ["coerce_item", "load_config_file", "ACTIVATIONS", "ALGOS", "CLIP_REWARDS", "DEFAULT_SYNC_ENVS",
           "DEVICES", "EXECUTORS", "FUSED", "NETS", "OPTIMIZERS", "SHARED_TORSO", "START_METHODS", "VEC_ENVS",
           "Config", "coerce_field", "cuda_available", "register"]
