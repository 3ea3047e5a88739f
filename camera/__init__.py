"""edgeseg.camera (the folder camera/): frame sources (camera index, video file, URL, images, Picamera2), the
capture thread, the realtime loop that segments frames and draws, shows, records or serves them, and stream()
for the Python API. OpenCV + numpy + the device core; never TensorFlow."""
