"""Reading images and masks from untrusted files, checked: a corrupt file, a decompression bomb, a mask of the
wrong kind or with values that are not classes each give a DataError that names the file."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from edgeseg.errors import DataError
from edgeseg.limits import MAX_IMAGE_PIXELS

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def read_image(path: Path, orient: bool = True) -> np.ndarray:
    """A colour image as BGR uint8 (8-bit greyscale and alpha are turned into BGR), turned upright by its EXIF
    orientation, or as its pixels are stored with orient=False (to line up with a mask, which has no EXIF)."""
    path = Path(path)
    raw = _file_bytes(path, "image")
    _check_pixels(path, raw)
    data = np.frombuffer(raw, dtype=np.uint8)
    try:
        flags = cv2.IMREAD_COLOR if orient else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
        img = cv2.imdecode(data, flags) if data.size else None
    except cv2.error:
        img = None
    if img is None:
        raise DataError(f"{path}: not a readable image (corrupt or unsupported format)")
    return img


def read_mask(path: Path, colours: tuple[tuple[int, int, int], ...] | None = None) -> np.ndarray:
    """A mask as uint8 class indices. Palette PNGs give their indices; RGB masks map through `colours`."""
    path = Path(path)
    data = _file_bytes(path, "mask")
    try:
        with Image.open(io.BytesIO(data)) as im:
            _check_size(path, *im.size)  # from the header, before the pixels are decoded
            im.load()
            mode = im.mode
            arr = np.array(im)
    except Image.DecompressionBombError as e:
        raise _too_large(path, e) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: not a readable mask ({type(e).__name__})") from None
    if arr.dtype.kind == "f":  # a float TIFF: its values would be truncated to classes without a word
        raise DataError(f"{path}: mask is floating point (mode {mode}); save class indices as 8-bit integers")
    if mode in ("RGB", "RGBA"):
        if not colours:
            if _is_grey(arr):
                return arr[..., 0].astype(np.uint8)
            raise DataError(f"{path}: RGB colour mask but the dataset has no colours to map (add classes.json)")
        return _colours_to_index(arr[..., :3], colours, path)
    if mode in ("LA",):
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise DataError(f"{path}: mask must be single-channel, got mode {mode}")
    if arr.dtype != np.uint8:
        if arr.size and (arr.max() > 255 or arr.min() < 0):
            raise DataError(f"{path}: mask values up to {int(arr.max())} do not fit 8 bits")
        arr = arr.astype(np.uint8)
    return arr


def _file_bytes(path: Path, what: str) -> bytes:
    """A file's bytes, or a packed dataset's member's (edgeseg.packfile) when the path names one."""
    if path.is_file():
        try:
            return path.read_bytes()
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    from edgeseg.packfile import member_bytes

    data = member_bytes(path)
    if data is None:
        raise DataError(f"{path}: no such {what}")
    return data


def _check_pixels(path: Path, data: bytes) -> None:
    """Refuse an image whose header claims more than MAX_IMAGE_PIXELS, before anything decodes it (a
    16000x16000 PNG mask, or a header that claims 60000x60000, would take gigabytes). The size is read from the
    content, whatever the name says: PIL reads the header of what it knows; Radiance HDR and PFM, which OpenCV
    decodes and PIL does not know, are sized from their own headers (a 9 MB HDR named .png decoded to
    12000x12000 past the cap); any other content OpenCV could decode but nothing here can size is refused."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except Image.DecompressionBombError as e:  # PIL's own limit, which it checks on opening
        raise _too_large(path, e) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        size = _other_header_size(data)
        if size is None:
            if _opencv_would_decode(data):
                raise DataError(
                    f"{path}: an image format whose size cannot be read before decoding it; convert it to PNG or JPEG"
                ) from None
            return  # not an image at all: the decoder that follows says so
        w, h = size
    _check_size(path, w, h)


def _other_header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a Radiance HDR or PFM header, the formats OpenCV decodes that PIL does not open."""
    import re

    head = data[:4096]
    if head.startswith(b"#?"):  # Radiance RGBE: header lines, a blank line, then "-Y H +X W"
        m = re.search(rb"\n\n([-+])Y (\d+) ([-+])X (\d+)", head)
        return (int(m.group(4)), int(m.group(2))) if m else (2**31, 2**31)  # unreadable: refused as too large
    if head[:3] in (b"PF\n", b"Pf\n", b"PF\r", b"Pf\r"):
        m = re.match(rb"P[Ff]\s+(\d+)\s+(\d+)", head)
        return (int(m.group(1)), int(m.group(2))) if m else (2**31, 2**31)
    return None


def _opencv_would_decode(data: bytes) -> bool:
    """Whether the content starts like an image format OpenCV may decode and nothing here can size: OpenEXR,
    JPEG XL, and the ISO media family (AVIF, HEIF)."""
    return (
        data[:4] == b"\x76\x2f\x31\x01"
        or data[:2] == b"\xff\x0a"
        or data[4:12] == b"JXL \r\n\x87\n"
        or (data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1"))
    )


def _check_size(path: Path, w: int, h: int) -> None:
    if w * h > MAX_IMAGE_PIXELS:
        raise DataError(f"{path}: image is {w}x{h}; edgeseg reads at most {MAX_IMAGE_PIXELS:,} pixels an image")


def _too_large(path: Path, e: Exception) -> DataError:
    return DataError(f"{path}: image too large to decode ({str(e).split(' could be')[0]})")


def _is_grey(arr: np.ndarray) -> bool:
    return bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all())


def _colours_to_index(rgb: np.ndarray, colours, path: Path) -> np.ndarray:
    key = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    table = np.array([(r << 16) | (g << 8) | b for r, g, b in colours], dtype=np.int32)
    order = np.argsort(table)
    pos = np.searchsorted(table[order], key)
    pos = np.clip(pos, 0, len(table) - 1)
    found = table[order][pos] == key
    if not found.all():
        y, x = np.argwhere(~found)[0]
        raise DataError(f"{path}: colour {tuple(int(v) for v in rgb[y, x])} at ({x}, {y}) is not a class colour")
    return order[pos].astype(np.uint8)


def check_mask_values(mask: np.ndarray, path: Path, num_classes: int, ignore_index: int | None) -> None:
    """DataError, naming the file, when a mask holds a value that is neither a class nor the ignore index.

    Args:
        mask: the class indices.
        path: the file it came from (for the message).
        num_classes: classes are 0..num_classes-1.
        ignore_index: the one other value allowed (None: none).
    """
    bad = mask >= num_classes
    if ignore_index is not None:
        bad &= mask != ignore_index
    if bad.any():
        v = int(mask[bad].max())
        raise DataError(
            f"{path}: mask value {v} is not a class (0..{num_classes - 1}"
            + (f", ignore {ignore_index})" if ignore_index is not None else ")")
        )


def list_images(folder: Path) -> list[Path]:
    """The image files directly in a folder (by suffix, hidden files left out), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith("."))
