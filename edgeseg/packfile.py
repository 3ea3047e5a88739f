"""Reading a packed dataset (`edgeseg pack`): one file that holds a dataset's frames, masks, classes, colours,
split lists and sequence names, so that training reads no PNG folder again and the data travels to a remote
GPU as one upload.

A pack is a ZIP archive, stored without compression (its members are already PNG or WebP):
`manifest.json` and one image and one mask member a frame. The manifest gives each member's SHA-256; ZIP's
own CRC-32 covers each member too. Nothing in it is trusted: the manifest's fields are checked before use, a
member is checked against its hash when it is read, and a truncated or corrupt file is one DataError naming it.

A frame of a pack has a path, `PACK/images/NAME.jpg`, that is no file on disk: edgeseg.images reads such paths
from the pack (member_bytes), so every reader that takes image paths (eval, calibration, the quantisation
report) takes a pack as it takes a folder. Standard library and numpy only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edgeseg.errors import DataError
from edgeseg.limits import MAX_JSON_BYTES

PACK_FORMAT = "edgeseg-pack"
PACK_VERSION = 1
PACK_SUFFIX = ".segpack"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 16 * MAX_JSON_BYTES  # a million frames' names and hashes
MAX_MEMBER_BYTES = 256 * 2**20  # one encoded image or mask
MEMBER_FOLDERS = ("images", "masks")


@dataclass(frozen=True)
class PackedFrame:
    """One frame of a pack: its image and mask members, their SHA-256s, and the splits that list it."""

    image: str
    mask: str
    sha256: tuple[str, str]
    splits: tuple[str, ...]


@dataclass(frozen=True)
class PackInfo:
    """What a pack's manifest says: classes, colours, ignore index, the frames with their splits, and how it
    was made (the source layout, the size, the image codec)."""

    path: Path
    classes: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...]
    ignore_index: int | None
    frames: tuple[PackedFrame, ...]
    source_format: str
    codec: str
    size_hw: tuple[int, int] | None

    def split(self, name: str) -> list[PackedFrame]:
        """The frames a split lists ("all": every frame)."""
        return [f for f in self.frames if name == "all" or name in f.splits]

    def sequences(self) -> dict[str, int]:
        """Frames per sequence, a sequence being the file name before its last "_" (CamVid's 0006R0_...)."""
        out: dict[str, int] = {}
        for f in self.frames:
            stem = PurePosixPath(f.image).stem
            key = stem.rpartition("_")[0] or stem
            out[key] = out.get(key, 0) + 1
        return out


def is_pack(path: Path) -> bool:
    """Whether `path` is a file that looks like a pack (a ZIP archive with a manifest), without reading it all."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as z:
            return MANIFEST in z.NameToInfo
    except (zipfile.BadZipFile, OSError, ValueError):
        return path.suffix == PACK_SUFFIX  # a damaged pack still is one: open_pack says what is wrong


def open_pack(path: Path) -> PackInfo:
    """The checked manifest of the pack at `path` (DataError naming the file and the field otherwise)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as e:
        raise DataError(f"{path}: cannot read the pack ({e.strerror or e})") from None
    return _reader(str(path), stat.st_mtime_ns, stat.st_size).info


def member_bytes(path: Path) -> bytes | None:
    """The bytes of a pack member named by a path inside the pack (PACK/images/NAME), checked against its
    SHA-256; None when no folder above `path` is a pack."""
    path = Path(path)
    pack = path.parent.parent
    if len(path.parts) < 3 or path.parent.name not in MEMBER_FOLDERS or not pack.is_file():
        return None
    stat = pack.stat()
    if not _is_pack_version(str(pack), stat.st_mtime_ns, stat.st_size):
        return None
    return _reader(str(pack), stat.st_mtime_ns, stat.st_size).read(f"{path.parent.name}/{path.name}")


class _Reader:
    """An open pack: its manifest and the hashes by member name; reads members one at a time (thread-safe)."""

    def __init__(self, path: Path):
        self.path, self.lock = path, threading.Lock()
        try:
            self.zip = zipfile.ZipFile(path)
            raw = self._member(MANIFEST, MAX_MANIFEST_BYTES)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise DataError(f"{path}: not a readable pack, truncated or corrupt ({type(e).__name__})") from None
        self.info = _parse_manifest(path, raw, set(self.zip.NameToInfo))
        self.hashes = {}
        for f in self.info.frames:
            self.hashes[f.image], self.hashes[f.mask] = f.sha256

    def _member(self, name: str, limit: int) -> bytes:
        entry = self.zip.NameToInfo.get(name)
        if entry is None:
            raise DataError(f"{self.path}: no {name} in the pack")
        if entry.file_size > limit:
            raise DataError(f"{self.path}: {name} is {entry.file_size:,} bytes (at most {limit:,})")
        with self.lock:
            return self.zip.read(entry)

    def read(self, name: str) -> bytes:
        """One member's bytes, checked against the manifest's SHA-256."""
        expected = self.hashes.get(name)
        if expected is None:
            raise DataError(f"{self.path}: the pack lists no {name}")
        try:
            data = self._member(name, MAX_MEMBER_BYTES)
        except (zipfile.BadZipFile, OSError, EOFError) as e:  # a CRC that fails, a member cut short
            raise DataError(f"{self.path}: {name} is damaged ({type(e).__name__}: {str(e)[:80]})") from None
        if hashlib.sha256(data).hexdigest() != expected:
            raise DataError(f"{self.path}: {name} does not match its SHA-256 in the manifest (the pack is damaged)")
        return data


@functools.lru_cache(maxsize=64)
def _is_pack_version(path: str, mtime_ns: int, size: int) -> bool:
    return is_pack(Path(path))  # once per file version: a training run reads every member of one pack


@functools.lru_cache(maxsize=8)
def _reader(path: str, mtime_ns: int, size: int) -> _Reader:
    return _Reader(Path(path))  # cached per file version: a pack rewritten in place is read afresh


def _parse_manifest(path: Path, raw: bytes, members: set[str]) -> PackInfo:
    try:
        m = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise DataError(f"{path}: the pack's manifest is not JSON ({type(e).__name__})") from None
    if not isinstance(m, dict) or m.get("format") != PACK_FORMAT:
        raise DataError(f"{path}: not an edgeseg pack (its manifest has no format {PACK_FORMAT!r})")
    if m.get("version") != PACK_VERSION:
        raise DataError(f"{path}: pack version {m.get('version')!r}; this edgeseg reads version {PACK_VERSION}")
    classes = m.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
        raise DataError(f"{path}: manifest field classes must be a non-empty list of names")
    colours = m.get("colours") or []
    ok = isinstance(colours, list) and len(colours) in (0, len(classes))
    if not ok or not all(
        isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in colours
    ):
        raise DataError(f"{path}: manifest field colours must be one [r, g, b] (0..255) per class, or empty")
    ignore = m.get("ignore_index")
    if ignore is not None and not (isinstance(ignore, int) and not isinstance(ignore, bool) and 0 <= ignore <= 255):
        raise DataError(f"{path}: manifest field ignore_index must be null or 0..255")
    size = m.get("size_hw")
    if size is not None and not (isinstance(size, list) and len(size) == 2 and all(_whole(v) for v in size)):
        raise DataError(f"{path}: manifest field size_hw must be null or [height, width]")
    frames = m.get("frames")
    if not isinstance(frames, list) or not frames:
        raise DataError(f"{path}: manifest field frames must be a non-empty list")
    return PackInfo(
        path,
        tuple(classes),
        tuple(tuple(c) for c in colours),
        ignore,
        tuple(_frame(path, i, f, members) for i, f in enumerate(frames)),
        str(m.get("source_format", "unknown"))[:40],
        str(m.get("codec", "unknown"))[:40],
        tuple(size) if size else None,
    )


def _frame(path: Path, i: int, f, members: set[str]) -> PackedFrame:
    where = f"{path}: manifest frames[{i}]"
    if not isinstance(f, dict):
        raise DataError(f"{where} is not an object")
    names = (f.get("image"), f.get("mask"))
    for folder, name in zip(MEMBER_FOLDERS, names, strict=True):
        p = PurePosixPath(name) if isinstance(name, str) else None
        if p is None or len(p.parts) != 2 or p.parts[0] != folder or p.name.startswith("."):
            raise DataError(f"{where}: {folder[:-1]} must be a member {folder}/NAME, got {name!r:.80}")
        if name not in members:
            raise DataError(f"{where}: {name} is not in the pack (truncated, or the manifest is wrong)")
    sha = f.get("sha256")
    if not (isinstance(sha, list) and len(sha) == 2 and all(isinstance(h, str) and len(h) == 64 for h in sha)):
        raise DataError(f"{where}: sha256 must be two hex digests (image, mask)")
    splits = f.get("splits")
    if not isinstance(splits, list) or not all(s in ("train", "val", "test") for s in splits):
        raise DataError(f"{where}: splits must list train, val or test")
    return PackedFrame(names[0], names[1], (sha[0], sha[1]), tuple(splits))


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 65535
