"""edgeseg.converters (the folder converters/): Keras -> TFLite (float32, float16, dynamic range, full-integer int8
with calibration) and ONNX (float32, int8), verified and written atomically. targets.py is the one table of
targets, pipeline.py runs one. TensorFlow is imported here and in edgeseg.training, never by the device core.
"""
