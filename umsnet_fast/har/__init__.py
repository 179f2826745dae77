"""The HAR application on top of the engine: data readers, training, evaluation and checkpoints.

The engine (umsnet_fast outside this package) never imports it. Readers need nothing beyond numpy;
training and evaluation need the [data] extra (scikit-learn, safetensors; sktime for BasicMotions).
"""
from .basicmotions import load_basicmotions
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .dataset import DataFormatError, HARDataset
from .datasets import DATASETS, load_dataset
from .hhar import load_hhar
from .mhealth import load_mhealth

__all__ = ["HARDataset", "DataFormatError", "DATASETS", "load_dataset", "load_mhealth", "load_hhar",
           "load_basicmotions", "load_checkpoint", "save_checkpoint", "CheckpointError"]
