"""Zone events: "enter" when a class's share of a zone has stayed at or above the rule's `enter` threshold for its
minimum duration, and "leave" when it has stayed below `leave` as long. Two thresholds (hysteresis) and a hold
time keep a share that hovers near one threshold, or one noisy frame, from making a storm of events."""

from __future__ import annotations

from dataclasses import dataclass

from edgeseg.result import iso_utc
from edgeseg.zones import EventRule


@dataclass
class _State:
    inside: bool = False
    since: float | None = None  # when the share first crossed towards the other state (pending), else None


class ZoneEvents:
    """Tracks each rule's state from frame to frame; update() returns the events a frame's zone shares make.

    Args:
        rules: the zones' event rules (edgeseg.zones.Zones.rules).
    """

    def __init__(self, rules: list[EventRule]):
        self.rules = list(rules)
        self.state = [_State() for _ in self.rules]

    def update(self, zone_shares: dict[str, dict[str, float]], t: float, frame: int) -> list[dict]:
        """The events of one frame: `zone_shares` as Result.zone_shares() gives them, `t` the frame's time
        (seconds since the epoch), `frame` its number."""
        events = []
        for rule, st in zip(self.rules, self.state, strict=True):
            share = zone_shares.get(rule.zone, {}).get(rule.cls, 0.0)
            crossing = share < rule.leave if st.inside else share >= rule.enter
            if not crossing:
                st.since = None
                continue
            st.since = t if st.since is None else st.since
            if t - st.since >= rule.min_duration:
                st.inside, st.since = not st.inside, None
                events.append(
                    {
                        "event": "enter" if st.inside else "leave",
                        "zone": rule.zone,
                        "class": rule.cls,
                        "share": share,
                        "frame": frame,
                        "time": iso_utc(t),
                    }
                )
        return events
