"""napari widgets: thin layers over the predictor and the training engine (one file per widget)."""
import sys

# Importing triton (pulled in by torch._dynamo via timm/torchvision) after napari has created its OpenGL
# context crashes the process when the GL driver is Mesa's llvmpipe (both bundle LLVM): seen under
# Xvfb. This plugin never compiles kernels, so inside napari triton is marked unavailable, which
# torch handles as on a machine without triton. Outside napari (CLI, training) nothing changes.
if "triton" not in sys.modules:
    sys.modules["triton"] = None  # type: ignore[assignment]
