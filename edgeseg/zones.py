"""Zones: named polygons over the frame, in normalised coordinates (0..1, x right, y down), read strictly from a
zones.json; each zone's class shares (which classes cover how much of it) and the zones drawn on a picture.

zones.json:

    {"zones": {
        "crosswalk": {
            "polygon": [[0.2, 0.6], [0.8, 0.6], [0.95, 1.0], [0.05, 1.0]],
            "events": [{"class": "Pedestrian", "enter": 0.10, "leave": 0.05, "min_duration": 0.5}]
        }
    }}

An event rule fires "enter" once the class's share of the zone has stayed at or above `enter` for `min_duration`
seconds, and "leave" once it has stayed below `leave` (at most `enter`: the hysteresis) as long
(edgeseg.events). Every field is checked, and a wrong one is named: zones.crosswalk.polygon[2].
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.limits import MAX_JSON_BYTES
from edgeseg.pixels import class_shares

MAX_ZONES = 64
MAX_POINTS = 256
MAX_RULES = 64
MAX_NAME = 64
MAX_MIN_DURATION_S = 3600.0
ZONE_BGR = (0, 255, 255)  # yellow: apart from every class colour that matters, readable over dark and light


@dataclass(frozen=True)
class EventRule:
    """When a class's share of a zone makes an event: enter at or above `enter`, leave below `leave`, each held
    for `min_duration` seconds."""

    zone: str
    cls: str
    enter: float
    leave: float
    min_duration: float = 0.0


@dataclass(frozen=True)
class Zone:
    """A named polygon, its points (x, y) normalised to 0..1, and its event rules."""

    name: str
    polygon: tuple[tuple[float, float], ...]
    rules: tuple[EventRule, ...] = ()

    def points(self, hw: tuple[int, int]) -> np.ndarray:
        """The polygon in pixels of a frame of `hw` (height, width), as OpenCV's int32 points."""
        h, w = hw
        return np.round(np.asarray(self.polygon) * [w - 1, h - 1]).astype(np.int32)


class Zones:
    """The zones of a zones.json: shares(mask) for each zone's class shares, draw(image) to show them.

    Args:
        zones: the zones, in the file's order.
        source: where they came from (for messages).
    """

    def __init__(self, zones: list[Zone], source: str = "zones"):
        self.zones, self.source = list(zones), source
        self._masks: dict[tuple[int, int], list[np.ndarray]] = {}  # frame size -> each zone's uint8 mask

    @property
    def names(self) -> list[str]:
        """The zones' names."""
        return [z.name for z in self.zones]

    @property
    def rules(self) -> list[EventRule]:
        """Every zone's event rules."""
        return [r for z in self.zones for r in z.rules]

    def check_classes(self, classes: tuple[str, ...]) -> None:
        """EdgesegError when an event rule names a class the model does not have."""
        for z in self.zones:
            for i, r in enumerate(z.rules):
                if r.cls not in classes:
                    raise EdgesegError(
                        f"{self.source}: zones.{z.name}.events[{i}].class: {r.cls!r} is not one of the model's "
                        f"classes ({', '.join(classes)})"
                    )

    def masks(self, hw: tuple[int, int]) -> list[np.ndarray]:
        """Each zone as a uint8 mask (1 inside) of a frame of `hw` (height, width); made once per size."""
        if hw not in self._masks:
            import cv2

            out = []
            for z in self.zones:
                m = np.zeros(hw, np.uint8)
                cv2.fillPoly(m, [z.points(hw)], 1)
                out.append(m)
            if len(self._masks) > 8:  # a camera that keeps changing size must not grow this
                self._masks.clear()
            self._masks[hw] = out
        return self._masks[hw]

    def shares(self, mask: np.ndarray, classes: tuple[str, ...]) -> dict[str, dict[str, float]]:
        """Zone name -> each class's share of the zone's pixels (0..1, summing to 1; all 0 for a zone too thin to
        hold a pixel at this frame size)."""
        return {
            z.name: class_shares(mask, classes, where)
            for z, where in zip(self.zones, self.masks(mask.shape[:2]), strict=True)
        }

    def draw(self, image: np.ndarray, offset_x: int = 0, width: int | None = None) -> None:
        """Outline each zone on `image` (BGR, in place) with its name; `offset_x` and `width` place the frame's
        area within a wider picture (the side-by-side view)."""
        import cv2

        h = image.shape[0]
        w = width or image.shape[1]
        for z in self.zones:
            pts = z.points((h, w)) + [offset_x, 0]
            cv2.polylines(image, [pts], True, (0, 0, 0), 4, cv2.LINE_AA)  # a dark edge: readable over any class
            cv2.polylines(image, [pts], True, ZONE_BGR, 2, cv2.LINE_AA)
            x, y = pts[:, 0].min(), max(12, pts[:, 1].min() - 4)
            cv2.putText(image, z.name, (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(image, z.name, (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, ZONE_BGR, 1, cv2.LINE_AA)


# ------------------------------------------------------------------------------------------------ reading


def load_zones(path: Path | str, classes: tuple[str, ...] | None = None) -> Zones:
    """Read and check a zones.json (see the module's docstring); with `classes`, the event rules' classes are
    checked against the model's. EdgesegError naming the file and the field for anything wrong."""
    from edgeseg.io import read_bounded

    path = Path(path)
    text = read_bounded(path, MAX_JSON_BYTES, "zones")
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise EdgesegError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except _Duplicate as e:
        raise EdgesegError(f"{path}: {e}") from None
    zones = Zones(parse_zones(data, str(path)), str(path))
    if classes is not None:
        zones.check_classes(classes)
    return zones


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise _Duplicate(f"the key {k!r} appears twice in one object")
    return dict(pairs)


def parse_zones(data, where: str = "zones") -> list[Zone]:
    """The zones of zones.json's parsed JSON (EdgesegError naming the field that is wrong)."""

    def bad(field: str, why: str) -> EdgesegError:
        return EdgesegError(f"{where}: {field}: {why}")

    if not isinstance(data, dict) or set(data) != {"zones"}:
        raise bad("top level", 'expected an object with one key, "zones"')
    zones = data["zones"]
    if not isinstance(zones, dict) or not 1 <= len(zones) <= MAX_ZONES:
        raise bad("zones", f"expected an object of 1 to {MAX_ZONES} zones by name")
    out = []
    for name, z in zones.items():
        at = f"zones.{name}"
        if not name.strip() or len(name) > MAX_NAME or not name.isprintable():
            raise bad(at, f"a zone's name is 1 to {MAX_NAME} printable characters")
        if not isinstance(z, dict) or "polygon" not in z or set(z) - {"polygon", "events"}:
            extra = sorted(set(z) - {"polygon", "events"}) if isinstance(z, dict) else []
            why = f"unknown keys {extra}" if extra else 'expected an object with "polygon" (and "events")'
            raise bad(at, why)
        polygon = _polygon(z["polygon"], f"{at}.polygon", bad)
        events = z.get("events", [])
        if not isinstance(events, list) or len(events) > MAX_RULES:
            raise bad(f"{at}.events", f"expected a list of at most {MAX_RULES} rules")
        rules = tuple(_rule(r, name, f"{at}.events[{i}]", bad) for i, r in enumerate(events))
        out.append(Zone(name, polygon, rules))
    return out


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _polygon(pts, at: str, bad) -> tuple[tuple[float, float], ...]:
    if not isinstance(pts, list) or not 3 <= len(pts) <= MAX_POINTS:
        raise bad(at, f"expected a list of 3 to {MAX_POINTS} points [x, y]")
    for i, p in enumerate(pts):
        if not (isinstance(p, list) and len(p) == 2 and all(_number(v) and 0 <= v <= 1 for v in p)):
            raise bad(f"{at}[{i}]", f"expected [x, y] with 0 <= x, y <= 1 (fractions of the frame), got {p!r}")
    xy = np.asarray(pts, np.float64)
    area = 0.5 * abs(np.dot(xy[:, 0], np.roll(xy[:, 1], 1)) - np.dot(xy[:, 1], np.roll(xy[:, 0], 1)))
    if _crosses_itself(xy):  # a bow-tie: its signed areas cancel, and its "inside" is not what was drawn
        raise bad(at, "the polygon crosses itself: give its points in order around the zone")
    if area < 1e-6:
        raise bad(at, "the polygon encloses no area (its points are on one line)")
    return tuple((float(x), float(y)) for x, y in pts)


def _crosses_itself(xy: np.ndarray) -> bool:
    """Whether two edges of the closed polygon that share no corner cross (touching does not count)."""
    a, b = xy, np.roll(xy, -1, axis=0)  # edge k runs from a[k] to b[k]

    def side(p, q, r):  # the sign of the turn p -> q -> r, for every pair of edges at once
        return np.sign(
            (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])
        )

    a1, b1, a2, b2 = a[:, None], b[:, None], a[None, :], b[None, :]
    cross = (side(a1, b1, a2) * side(a1, b1, b2) < 0) & (side(a2, b2, a1) * side(a2, b2, b1) < 0)
    n = len(xy)
    k = np.arange(n)
    apart = (np.abs(k[:, None] - k[None, :]) > 1) & ~((k[:, None] == 0) & (k[None, :] == n - 1))
    apart &= ~((k[:, None] == n - 1) & (k[None, :] == 0))
    return bool((cross & apart).any())


RULE_KEYS = {"class", "enter", "leave", "min_duration"}


def _rule(r, zone: str, at: str, bad) -> EventRule:
    if not isinstance(r, dict) or not {"class", "enter"} <= set(r) or set(r) - RULE_KEYS:
        extra = sorted(set(r) - RULE_KEYS) if isinstance(r, dict) else []
        raise bad(at, f"unknown keys {extra}" if extra else 'expected {"class", "enter"[, "leave", "min_duration"]}')
    cls, enter = r["class"], r["enter"]
    if not isinstance(cls, str) or not cls:
        raise bad(f"{at}.class", "expected a class name")
    if not _number(enter) or not 0 < enter <= 1:
        raise bad(f"{at}.enter", f"expected a share above 0 and at most 1, got {enter!r}")
    leave = r.get("leave", enter)
    if not _number(leave) or not 0 <= leave <= enter:
        raise bad(f"{at}.leave", f"expected a share from 0 to enter ({enter}), got {leave!r}")
    dur = r.get("min_duration", 0.0)
    if not _number(dur) or not 0 <= dur <= MAX_MIN_DURATION_S:
        raise bad(f"{at}.min_duration", f"expected seconds from 0 to {MAX_MIN_DURATION_S:g}, got {dur!r}")
    return EventRule(zone, cls, float(enter), float(leave), float(dur))
