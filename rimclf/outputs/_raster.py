"""Drawing into an RGB array: the pixels of the QC montage (:mod:`rimclf.outputs._montage`).

The montage is composed as one ``uint8`` RGB array: panels windowed and enlarged, lesion
outlines, the scale bar, the colourbar strip and the text, whose glyphs come from matplotlib's
FreeType fonts (DejaVu Sans, as in any matplotlib figure) without a figure, axes or artists: a
figure with an axes, an image and contours per panel made a montage cost more than a second.

Coordinates: a panel is an ``(n, n)`` plane whose row 0 is the bottom (``origin="lower"``);
on the canvas, pixel ``(row, col)`` runs top-down, and a panel sample ``(r, c)`` covers the
``scale x scale`` block whose top-left corner is ``(top + (n - 1 - r) * scale, left + c * scale)``.
"""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

YELLOW = (255, 255, 0)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


def gray(plane: np.ndarray, low: float, high: float) -> np.ndarray:
    """``plane`` windowed to ``low..high`` on matplotlib's 256-level ``gray`` map, as uint8.

    Examples
    --------
    >>> gray(np.array([[-1.0, 0.0, 0.5, 1.0, 2.0]]), 0.0, 1.0)
    array([[  0,   0, 128, 255, 255]], dtype=uint8)
    """
    span = max(float(high) - float(low), 1e-6)
    level = np.floor((np.asarray(plane, dtype=np.float64) - low) / span * 256.0)
    return np.clip(level, 0, 255).astype(np.uint8)


def enlarge(plane: np.ndarray, scale: int) -> np.ndarray:
    """Each sample as a ``scale x scale`` block, bottom row last (nearest-neighbour display)."""
    return np.repeat(np.repeat(plane[::-1], scale, axis=0), scale, axis=1)


def outline(mask: np.ndarray) -> list[np.ndarray]:
    """The 0.5 iso-lines of a binary plane (as matplotlib's ``contour`` draws them), in sample
    coordinates ``(x = column, y = row)``."""
    if not mask.any():
        return []
    import contourpy  # matplotlib's own contouring library (a dependency of matplotlib)

    generator = contourpy.contour_generator(z=mask.astype(np.float64), line_type="Separate")
    return [line for line in generator.lines(0.5) if len(line) > 1]


def draw_lines(canvas: np.ndarray, lines: list[np.ndarray], *, top: int, left: int, n: int, scale: int,
               colour: tuple[int, int, int] = YELLOW, dash_px: float | None = None) -> None:
    """Paint polylines in sample coordinates onto ``canvas`` (1 pixel wide; dashed with ``dash_px``
    on and off along the line when given), clipped to the panel."""
    for line in lines:
        x = left + (line[:, 0] + 0.5) * scale
        y = top + (n - 1 - line[:, 1] + 0.5) * scale
        step = np.hypot(np.diff(x), np.diff(y))
        counts = np.maximum(np.ceil(step * 2).astype(int), 1)  # a point every half pixel
        fractions = np.concatenate([np.arange(k) / k for k in counts])
        segment = np.repeat(np.arange(len(step)), counts)
        px = x[segment] + fractions * np.diff(x)[segment]
        py = y[segment] + fractions * np.diff(y)[segment]
        if dash_px is not None:
            arc = np.concatenate([[0.0], np.cumsum(step)])[segment] + fractions * step[segment]
            keep = (arc % (2 * dash_px)) < dash_px
            px, py = px[keep], py[keep]
        rows = np.clip(np.floor(py).astype(int), top, top + n * scale - 1)
        cols = np.clip(np.floor(px).astype(int), left, left + n * scale - 1)
        canvas[rows, cols] = colour


def fill(canvas: np.ndarray, rows: slice, cols: slice, colour: tuple[int, int, int]) -> None:
    """A filled rectangle (the scale bar, tick marks)."""
    canvas[rows, cols] = colour


def colour_strip(height: int, width: int) -> np.ndarray:
    """A vertical ``gray`` ramp, black at the bottom and white at the top, framed in black."""
    ramp = gray(np.linspace(1.0, 0.0, height)[:, None].repeat(width, axis=1), 0.0, 1.0)
    strip = np.repeat(ramp[..., None], 3, axis=2)
    strip[[0, -1], :] = BLACK
    strip[:, [0, -1]] = BLACK
    return strip


@lru_cache(maxsize=4)
def _font(bold: bool):
    from matplotlib.font_manager import FontProperties, findfont, get_font

    return get_font(findfont(FontProperties(family=["sans-serif"], weight="bold" if bold else "normal")))


@lru_cache(maxsize=256)  # orientation letters, tick labels: drawn again and again
def text_image(text: str, size_pt: float, *, bold: bool = False) -> np.ndarray:
    """One line of ``text`` rendered at 100 dpi as an alpha mask (uint8, 255 = ink; read-only)."""
    font = _font(bold)
    font.clear()
    font.set_size(size_pt, 100)
    font.set_text(text, 0.0)
    font.draw_glyphs_to_bitmap(antialiased=True)
    image = np.array(font.get_image(), dtype=np.uint8)
    image.flags.writeable = False
    return image


def draw_text(canvas: np.ndarray, x: float, y: float, text: str, *, size_pt: float, colour=BLACK, ha: str = "left",
              va: str = "top", bold: bool = False, rotation: int = 0) -> None:
    """Write ``text`` (lines split at newlines, centred on each other) with its box aligned at
    canvas point ``(x, y)`` (``ha``: left/center/right; ``va``: top/center/bottom); ``rotation``
    90 turns it counter-clockwise. Ink is blended over the canvas; what falls outside is cut."""
    lines = [text_image(line, size_pt, bold=bold) for line in text.split("\n")]
    line_px = int(round(size_pt * 100 / 72 * 1.25))
    width = max(line.shape[1] for line in lines)
    block = np.zeros((line_px * (len(lines) - 1) + lines[-1].shape[0], width), dtype=np.uint8)
    for index, line in enumerate(lines):
        start = (width - line.shape[1]) // 2
        block[index * line_px:index * line_px + line.shape[0], start:start + line.shape[1]] = line
    if rotation == 90:
        block = np.rot90(block)
    height, width = block.shape
    left = int(round(x - {"left": 0, "center": width / 2, "right": width}[ha]))
    top = int(round(y - {"top": 0, "center": height / 2, "bottom": height}[va]))
    rows = slice(max(top, 0), min(top + height, canvas.shape[0]))
    cols = slice(max(left, 0), min(left + width, canvas.shape[1]))
    if rows.start >= rows.stop or cols.start >= cols.stop:
        return
    alpha = block[rows.start - top:rows.stop - top, cols.start - left:cols.stop - left, None] / 255.0
    region = canvas[rows, cols]
    region[...] = np.round(region * (1 - alpha) + np.asarray(colour, dtype=float) * alpha).astype(np.uint8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(pixels: np.ndarray, *, dpi: int = 100, level: int = 1) -> bytes:
    """``(height, width, 3)`` uint8 RGB as a PNG file's bytes: every row with the "up" filter
    (the difference from the row above), deflated at zlib ``level``, and the resolution.

    A third of the time of Pillow's PNG writer (which tries five filters per row) at about the
    same size: on a montage's 3x3-pixel blocks, "up" is zero on two rows of three.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    >>> np.array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(pixels)))), pixels)
    True
    """
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, width * 3)
    filtered = np.empty((height, width * 3 + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # filter type "up"
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # modulo 256, as PNG defines it
    per_metre = int(round(dpi / 0.0254))
    return b"".join([
        b"\x89PNG\r\n\x1a\n",
        _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)),  # 8-bit RGB
        _chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)),
        _chunk(b"IDAT", zlib.compress(filtered.tobytes(), level)),
        _chunk(b"IEND", b""),
    ])


def write_png(path, pixels: np.ndarray, *, dpi: int = 100) -> Path:
    """Write :func:`png_bytes` to ``path``."""
    Path(path).write_bytes(png_bytes(pixels, dpi=dpi))
    return Path(path)
