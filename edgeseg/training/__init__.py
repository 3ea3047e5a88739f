"""Workstation side: building and training models. TensorFlow and Keras live here (and in converters/)."""
