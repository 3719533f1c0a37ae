"""skydetect: deep-learning detection of galaxy clusters (Planck) and infrared bubbles (Spitzer).

keras-unet-collection needs the legacy Keras 2 API, so ``TF_USE_LEGACY_KERAS`` is set here,
before anything can import TensorFlow.

``TF_ENABLE_ONEDNN_OPTS=1``: TensorFlow turns its oneDNN CPU kernels on by itself only on CPUs
with AVX-512 VNNI / BF16 or AMX; on a CPU with AVX2 alone it falls back to its Eigen kernels,
which train the default U-Net 1.75x and the SSD 1.5x slower on an AMD EPYC (Zen 3, AVX2;
``benchmarks/train_throughput.py``) and round differently. Set here, every x86 CPU runs
oneDNN; a value already in the environment wins (``0`` restores TensorFlow's choice).
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.3.0"
