"""edgeseg run: segment a camera, a video, images or a stream in real time, and send what it sees on (MQTT, JSON
lines, webhooks) with zones and their events. The device path: never TensorFlow for a .tflite."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli.common import (
    MODEL_HELP,
    DelegateChoice,
    DelegateOpt,
    LabelsOpt,
    RuntimeChoice,
    RuntimeOpt,
    ThreadsOpt,
    ViewChoice,
    finite_option,
    fmt,
    handles_errors,
    one_model,
    parse_size,
    stopped,
    writable,
    write_json,
)
from edgeseg.errors import EdgesegError
from edgeseg.limits import MAX_CAMERA_INDEX, MAX_FPS

EVERY_METAVAR = "N|Ns"


@handles_errors
def run(
    model: Annotated[
        str | None,
        typer.Argument(
            help="A segmentation model (.tflite, .onnx, OpenVINO .xml, ncnn .param, .rknn, .keras), or a shipped "
            "model: nano or small (default: small)."
        ),
    ] = None,
    model_opt: Annotated[str | None, typer.Option("--model", hidden=True, help=MODEL_HELP)] = None,
    camera: Annotated[
        int | None, typer.Option(min=0, max=MAX_CAMERA_INDEX, help="Camera index (V4L2 /dev/videoN).")
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="Video file, image folder or glob, rtsp:// or http:// URL, or synthetic[:WxH].")
    ] = None,
    picamera: Annotated[bool, typer.Option("--picamera", help="Raspberry Pi camera via Picamera2.")] = False,
    camera_size: Annotated[str | None, typer.Option(metavar="WxH", help="Ask the camera for WIDTHxHEIGHT.")] = None,
    camera_fps: Annotated[
        float | None, finite_option(min=0.1, max=MAX_FPS, help="Ask the camera for this frame rate.")
    ] = None,
    show: Annotated[bool, typer.Option("--show/--no-show", help="Open a window (q or Esc quits).")] = True,
    record: Annotated[
        Path | None, typer.Option(help="Write the rendered video here (.mp4, .webm, .mov, .mkv or .avi).")
    ] = None,
    save_masks: Annotated[
        Path | None, typer.Option(file_okay=False, help="Write each frame's class-index PNG into this folder.")
    ] = None,
    save_frames: Annotated[
        Path | None,
        typer.Option(file_okay=False, help="Write each rendered frame (the view, legend and HUD) as a PNG here."),
    ] = None,
    serve: Annotated[
        str | None,
        typer.Option(help="[HOST:]PORT: serve the live view to a browser (binds 127.0.0.1 unless a host is given)."),
    ] = None,
    max_frames: Annotated[int | None, typer.Option(min=1, max=10**9, help="Stop after N frames.")] = None,
    duration: Annotated[
        float | None, finite_option(metavar="SECONDS", help="Stop after this many seconds (more than 0).")
    ] = None,
    realtime: Annotated[
        bool,
        typer.Option(
            "--realtime",
            help="Pace a file at its frame rate, dropping frames inference cannot keep up with, as a camera would.",
        ),
    ] = False,
    reconnect: Annotated[
        bool, typer.Option("--reconnect/--no-reconnect", help="Reopen a live source that stops delivering.")
    ] = True,
    view: Annotated[ViewChoice, typer.Option(help="What to draw.")] = ViewChoice.overlay,
    alpha: Annotated[float, finite_option(min=0.0, max=1.0, help="Mask opacity over the frame.")] = 0.5,
    legend: Annotated[bool, typer.Option("--legend/--no-legend", help="Class legend.")] = True,
    threads: ThreadsOpt = None,
    runtime: RuntimeOpt = RuntimeChoice.auto,
    delegate: DelegateOpt = DelegateChoice.auto,
    labels: LabelsOpt = None,
    json_out: Annotated[
        Path | None, typer.Option("--stats", help="Write loop statistics (JSON) here, the zone events included.")
    ] = None,
    publish: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="mqtt://[USER@]HOST[:PORT]/TOPIC or mqtts://...: each frame's result on TOPIC, zone events on "
            "TOPIC/events, online/offline (retained, with a last will) on TOPIC/availability. The password: "
            "EDGESEG_MQTT_PASSWORD or --mqtt-password-file.",
        ),
    ] = None,
    mqtt_qos: Annotated[
        int, typer.Option(min=0, max=1, metavar="0|1", help="MQTT quality of service (1: nothing lost to a reconnect).")
    ] = 1,
    mqtt_ca: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="CA certificate (PEM) to check an mqtts:// broker by."),
    ] = None,
    mqtt_password_file: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="A file whose first line is the MQTT password (kept out of `ps`)."),
    ] = None,
    publish_every: Annotated[
        str,
        typer.Option(
            metavar=EVERY_METAVAR,
            help="Send every Nth frame's result, or (Ns, e.g. 2s or 0.5s) at most one every N seconds, to "
            "--publish and --jsonl. Events always go.",
        ),
    ] = "1",
    publish_mask: Annotated[
        str | None,
        typer.Option(
            metavar=EVERY_METAVAR,
            help="Add the mask (PNG, base64) to a frame's result every Nth sent result, or at most every N seconds.",
        ),
    ] = None,
    jsonl: Annotated[
        str | None,
        typer.Option(metavar="FILE|-", help="Append each frame's result and each event as a JSON line (-: stdout)."),
    ] = None,
    webhook: Annotated[
        str | None,
        typer.Option(metavar="URL", help="POST each zone event (JSON) here, with retries and back-off."),
    ] = None,
    zones: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="zones.json: named polygons (0..1 coordinates) drawn on the view, their class shares in each "
            "result, and enter/leave events.",
        ),
    ] = None,
    health_timeout: Annotated[
        float,
        finite_option(
            min=0.5,
            max=86400,
            metavar="SECONDS",
            help="/healthz (--serve) is 503 after this long without a frame.",
        ),
    ] = 10.0,
) -> None:
    """Segment a camera, a video, images or a stream in real time: show, record, serve to a browser, and send
    each frame's result and the zones' events on (MQTT, JSON lines, webhooks)."""
    from edgeseg.camera.loop import LoopOptions, run_loop
    from edgeseg.camera.sinks import SinkOptions, open_sinks
    from edgeseg.camera.sources import open_source
    from edgeseg.models import open_model

    if duration is not None and duration <= 0:
        raise EdgesegError(f"--duration {duration:g}: give a time above 0 seconds")
    model = one_model(model, model_opt, default=True)
    echo = _echo(jsonl)
    writable(record, json_out, Path(jsonl) if jsonl and jsonl != "-" else None, folders=(save_masks, save_frames))
    if record is not None:
        from edgeseg.camera.record import check_record_path

        check_record_path(record)
    show = _display_or_not(show)
    serve_at = None
    if serve:
        from edgeseg.camera.serve import parse_serve

        serve_at = parse_serve(serve)
    if mqtt_ca is not None:  # before the model loads and the source opens
        if not publish:
            raise EdgesegError("--mqtt-ca checks an mqtts:// broker's certificate: give --publish mqtts://HOST/TOPIC")
        from edgeseg.camera.mqtt import check_url
        from edgeseg.camera.sinks import sink_class

        sink_class(publish, ("mqtt", "mqtts"), "--publish")  # an http:// URL is not "plain MQTT"
        check_url(publish, mqtt_ca)
    results = _results_options(zones, publish_every, publish_mask)
    if (publish_every != "1" or publish_mask) and not (publish or jsonl):
        _warn(
            "warning: --publish-every and --publish-mask shape what --publish and --jsonl send: with neither, they "
            "do nothing"
        )
    m = open_model(model, threads=threads, delegate=delegate.value, runtime=runtime.value, labels=labels)
    if results["zones"] is not None:
        results["zones"].check_classes(m.spec.classes)
    lores = (m.spec.input_hw[1], m.spec.input_hw[0]) if picamera else None
    log = _warn
    opts = LoopOptions(
        show=show,
        record=record,
        save_masks=save_masks,
        save_frames=save_frames,
        max_frames=max_frames,
        duration=duration,
        alpha=alpha,
        view=view.value,
        legend=legend,
        realtime=realtime,
        reconnect=reconnect,
        serve=serve_at,
        log=log,
        health_stale_s=health_timeout,
        **results,
    )
    with open_source(
        camera,
        source,
        picamera,
        parse_size(camera_size, "--camera-size")[::-1] if camera_size else None,
        camera_fps,
        lores,
    ) as src:
        opts.sinks = open_sinks(publish, jsonl, webhook, SinkOptions(mqtt_qos, mqtt_ca, mqtt_password_file, log))
        echo(f"{model.name} on {src.name}" + ("" if show else " (no window)") + "; Ctrl-C stops")
        stats = run_loop(m, src, opts)
    d = stats.to_dict()
    if json_out:  # the file first, then the talk: a reader that goes away (| head -1) costs no --stats
        write_json(json_out, d, echo)
    _print_run_stats(d, echo)
    for what in (
        record and (f"wrote {record}" if d["frames"] else f"no frame reached {record}: nothing written"),
        save_masks and f"wrote {_count(d['frames'], 'mask')} to {save_masks}",
        save_frames and f"wrote {_count(d['frames'], 'rendered frame')} to {save_frames}",
        jsonl not in (None, "-") and f"wrote {_sent(d, 'jsonl')} JSON lines to {jsonl}",
    ):
        if what:
            echo(what)
    if stats.interrupted:
        raise stopped()


def _warn(msg: str) -> None:
    typer.secho(msg, fg=typer.colors.YELLOW, err=True)


def _echo(jsonl: str | None):
    """typer.echo, on stderr when --jsonl - makes stdout the results' own (a reader gets JSON lines only)."""
    return (lambda msg: typer.echo(msg, err=True)) if jsonl == "-" else typer.echo


def _display_or_not(show: bool) -> bool:
    from edgeseg.host import has_display

    if show and not has_display():
        stale = os.environ.get("DISPLAY")
        why = f"DISPLAY={stale} is set but no X server answers" if stale else "no display"
        _warn(f"{why}: running without a window (--no-show)")
        return False
    return show


def _results_options(zones: Path | None, publish_every: str, publish_mask: str | None) -> dict:
    """LoopOptions' zones and rate caps, checked before the model opens (a bad zones.json is one line)."""
    from edgeseg.camera.sinks import Every

    z = None
    if zones is not None:
        from edgeseg.zones import load_zones

        z = load_zones(zones)
    return {
        "zones": z,
        "publish_every": Every(publish_every, "--publish-every"),
        "mask_every": Every(publish_mask, "--publish-mask") if publish_mask else None,
    }


def _sent(d: dict, sink: str) -> int:
    return next((s["sent"] for s in d["sinks"] if s["sink"] == sink), 0)


def _print_run_stats(d: dict, echo=typer.echo) -> None:
    echo(
        f"{d['frames']} frames in {d['seconds']:.1f} s ({fmt(d['fps'])} FPS); dropped {d['dropped']}, "
        f"corrupt {d['corrupt']}, reconnects {d['reconnects']}" + (" (interrupted)" if d["interrupted"] else "")
    )
    for s in d["sinks"]:
        extra = f", {s['delivered']} acknowledged" if "delivered" in s else ""
        echo(f"{s['sink']}: {s['sent']} messages sent{extra}, {s['dropped']} dropped")
    if d["events_total"]:
        echo(f"{d['events_total']} zone events")
    echo(f"{'stage (ms)':<14}{'p50':>8}{'p90':>8}{'p99':>8}")
    for name, st in list(d["stages"].items()) + [("frame age", d["frame_age"])]:
        if st:
            echo(f"{name:<14}{st['p50_ms']:8.2f}{st['p90_ms']:8.2f}{st['p99_ms']:8.2f}")


def _count(n: int, what: str) -> str:
    """'1 mask', '2 masks'."""
    return f"{n} {what}{'' if n == 1 else 's'}"
