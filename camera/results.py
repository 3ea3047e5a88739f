"""The loop's results as data, on the render thread: each frame's Result (edgeseg.result) with its zone shares,
the zone events it makes (edgeseg.events), and both offered to the sinks (edgeseg.camera.sinks), which send them
on threads of their own. Offering never waits: a full sink queue drops and counts."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

import numpy as np

from edgeseg.camera.sinks import Every, SinkThread
from edgeseg.events import ZoneEvents
from edgeseg.result import Result
from edgeseg.spec import ModelSpec
from edgeseg.zones import Zones

EVENTS_KEPT = 1000  # the newest events kept for --stats (the count is of them all)


class Results:
    """Turns each frame's mask into its result and events, and feeds the sinks.

    Args:
        spec: the model's spec (class names).
        model: the model's file name, as results name it.
        source: the source's name.
        zones: the zones (shares and events), or None.
        sinks: the sinks, each on its thread.
        every: the rate cap on frame results (events always go).
        mask_every: how often a frame result carries the mask (PNG, base64), or None for never.
        log: where events are said (None: not said).
    """

    def __init__(
        self,
        spec: ModelSpec,
        model: str,
        source: str,
        zones: Zones | None = None,
        sinks: list[SinkThread] = (),
        every: Every | None = None,
        mask_every: Every | None = None,
        log: Callable[[str], None] | None = None,
    ):
        self.spec, self.model, self.source, self.zones = spec, model, source, zones
        self.sinks, self.every, self.mask_every, self.log = list(sinks), every or Every("1"), mask_every, log
        self.events = ZoneEvents(zones.rules) if zones is not None else None
        self.recent: collections.deque = collections.deque(maxlen=EVENTS_KEPT)
        self.event_count = 0

    def frame(
        self, index: int, mask: np.ndarray, t_wall: float, latency_ms: float, counts: np.ndarray | None = None
    ) -> list[dict]:
        """One frame's events, returned; its result and events offered to the sinks.

        Args:
            index: the frame's number from the source.
            mask: its class mask, at the frame's size.
            t_wall: its capture time, seconds since the epoch.
            latency_ms: milliseconds from its capture to this mask.
            counts: the mask's pixels per class when the caller has counted them (else counted here).
        """
        result = Result(
            mask=mask,
            frame=None,
            spec=self.spec,
            index=index,
            time=t_wall,
            source=self.source,
            model=self.model,
            latency_ms=latency_ms,
            zones=self.zones,
            counts=counts,
        )
        events = self.events.update(result.zone_shares(), t_wall, index) if self.events is not None else []
        if self.sinks and self.every.due():
            with_mask = self.mask_every is not None and self.mask_every.due()
            d = result.to_dict(mask=with_mask)
            for s in self.sinks:
                s.offer("frame", d)
        for e in events:
            self.event_count += 1
            self.recent.append(e)
            if self.log is not None:
                self.log(f"{e['event']} {e['zone']}: {e['class']} {100 * e['share']:.1f}%")
            for s in self.sinks:
                s.offer("event", e)
        return events

    @property
    def messages_dropped(self) -> int:
        """Messages lost in every sink (queue full, broker away beyond its queue, a POST that never passed)."""
        return sum(s.total_dropped for s in self.sinks)

    def status(self) -> dict:
        """The sinks' states, messages dropped, and the event count (for /stats.json)."""
        sinks = [s.status() for s in self.sinks]
        return {
            "mqtt": next((st["state"] for st in sinks if st["sink"] == "mqtt"), None),
            "sinks": sinks,
            "messages_dropped": self.messages_dropped,
            "events": self.event_count,
        }

    def close(self) -> None:
        """Send what the sinks hold, then close them."""
        for s in self.sinks:
            s.close()


def wall_time(t_capture_ns: int) -> float:
    """A perf_counter_ns stamp as seconds since the epoch."""
    return time.time() - (time.perf_counter_ns() - t_capture_ns) / 1e9
