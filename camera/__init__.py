"""The realtime loop: frame sources (camera index, video file, URL), and the loop that segments frames and
draws, shows or records the overlay. OpenCV + numpy + edgeseg core; never TensorFlow."""
