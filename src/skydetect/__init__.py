"""skydetect: deep-learning detection of galaxy clusters (Planck) and infrared bubbles (Spitzer).

keras-unet-collection needs the legacy Keras 2 API, so ``TF_USE_LEGACY_KERAS`` is set here,
before anything can import TensorFlow.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.3.0"
