"""A robot's control loop on edgeseg: segment each camera frame and slow down when the road ahead narrows or a
pedestrian is in the lower half of the view.

    python examples/robot_loop.py                      # the shipped small model on a synthetic stream
    python examples/robot_loop.py --source 0           # camera 0
    python examples/robot_loop.py --source picamera --model nano
"""

from __future__ import annotations

import argparse

from edgeseg import EdgesegError, load_model


def drive_command(result) -> str:
    """What the robot does for one frame: a decision from the class mask's lower half."""
    classes = result.classes
    lower = result.mask[result.mask.shape[0] // 2 :]
    share = {name: float((lower == i).mean()) for i, name in enumerate(classes)}
    if share.get("Pedestrian", 0.0) > 0.02:
        return "stop"
    if share.get("Road", 0.0) < 0.3:
        return "slow"
    return "go"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="small", help="nano, small or a .tflite")
    ap.add_argument("--source", default="synthetic:480x360", help="camera index, file, URL, picamera, synthetic")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    seg = load_model(args.model, threads=args.threads)
    source = int(args.source) if args.source.isdigit() else args.source
    if str(source).startswith("synthetic"):
        print(
            "synthetic frames (shapes, not a street): the road model's go/slow/stop below shows the loop working, "
            "not driving sense; give --source a camera or a street video"
        )
    for result in seg.stream(source, max_frames=args.frames):
        command = drive_command(result)
        print(f"frame {result.index:4d}: {command:<4} (inference {result.timings['invoke']:.1f} ms)")


if __name__ == "__main__":
    try:
        main()
    except EdgesegError as e:  # no camera, a bad model...: edgeseg's errors are one line, say it as one
        raise SystemExit(f"error: {e}") from None
