"""Keras -> TFLite: float32, dynamic-range and full-integer int8, with calibration and verification.

TensorFlow is imported here; nothing on the device path imports this package.
"""
