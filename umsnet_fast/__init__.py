"""umsnet_fast: a fused-kernel inference engine for UMSNet, with a plain-PyTorch reference."""
from . import presets, reference
from .backends import BACKEND_NAMES, available_backends
from .capture import CompiledUMSNet, compile  # noqa: A004 (umsnet_fast.compile, like torch.compile)
from .config import SensorSpec, UMSNetConfig
from .model import UMSNet
from .streaming import Stream, StreamPool

__version__ = "0.1.0"

__all__ = ["UMSNet", "SensorSpec", "UMSNetConfig", "presets", "reference", "available_backends",
           "BACKEND_NAMES", "compile", "CompiledUMSNet", "Stream", "StreamPool", "__version__"]
