"""A small line chart as a PNG with the standard library only (zlib): the scaling benchmark's
plot (`python -m loadtest.png_chart results.json out.png`). Axis numbers in a 3x5 pixel font;
the legend is in BENCHMARKS.md, next to the picture."""

from __future__ import annotations

import itertools
import json
import struct
import sys
import zlib
from pathlib import Path

_FONT = {  # 3x5 glyphs, rows top to bottom, 3 bits each
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1), "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1),
    "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7), ".": (0, 0, 0, 0, 2),
}
Color = tuple[int, int, int]


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.w, self.h = width, height
        self.px = bytearray(b"\xff" * (width * height * 3))

    def dot(self, x: int, y: int, c: Color, size: int = 1) -> None:
        for dx in range(size):
            for dy in range(size):
                xx, yy = x + dx, y + dy
                if 0 <= xx < self.w and 0 <= yy < self.h:
                    i = (yy * self.w + xx) * 3
                    self.px[i:i + 3] = bytes(c)

    def line(self, x0: int, y0: int, x1: int, y1: int, c: Color, size: int = 2) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for s in range(steps + 1):
            self.dot(x0 + (x1 - x0) * s // steps, y0 + (y1 - y0) * s // steps, c, size)

    def text(self, x: int, y: int, s: str, c: Color = (0, 0, 0), scale: int = 2) -> None:
        for ch in s:
            for row, bits in enumerate(_FONT.get(ch, (0,) * 5)):
                for col in range(3):
                    if bits & (4 >> col):
                        self.dot(x + col * scale, y + row * scale, c, scale)
            x += 4 * scale

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.px[y * self.w * 3:(y + 1) * self.w * 3])
                       for y in range(self.h))

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def panel(c: Canvas, left: int, top: int, w: int, h: int, xs: list[int],
          series: list[tuple[list[float | None], Color]]) -> None:
    """Axes, x ticks at `xs` (evenly spaced), y from 0 to the largest value; None: no point."""
    ymax = max((v for values, _ in series for v in values if v is not None),
               default=1.0) * 1.15 or 1.0
    c.line(left, top + h, left + w, top + h, (0, 0, 0), 1)
    c.line(left, top, left, top + h, (0, 0, 0), 1)

    def pos(i: int, v: float) -> tuple[int, int]:
        return left + 20 + i * (w - 40) // max(1, len(xs) - 1), top + h - int(h * v / ymax)

    for i, x in enumerate(xs):
        px, _ = pos(i, 0)
        c.text(px - 3, top + h + 6, str(x))
    for k in range(5):
        v = ymax * k / 4
        c.line(left - 4, pos(0, v)[1], left, pos(0, v)[1], (0, 0, 0), 1)
        c.text(left - 64, pos(0, v)[1] - 5, f"{v:.2f}" if ymax < 10 else f"{v:.0f}")
    for values, color in series:
        points = [pos(i, v) if v is not None else None for i, v in enumerate(values)]
        for a, b in itertools.pairwise(points):
            if a is not None and b is not None:
                c.line(a[0], a[1], b[0], b[1], color, 3)
        for point in points:
            if point is not None:
                c.dot(point[0] - 3, point[1] - 3, color, 7)


def mean(rows: list[dict[str, float]], key: str) -> float:
    values = [r[key] for r in rows if r.get(key) is not None]
    return sum(values) / len(values) if values else 0.0


def chart(results: dict[str, list[dict[str, object]]]) -> bytes:
    interest = [s for s in results["steps"] if s["shards"] != 1]
    baseline = [s for s in results["steps"] if s["shards"] == 1]
    xs = [int(str(s["pods"])) for s in interest]
    rows = [s["per_pod"] for s in interest]
    c = Canvas(900, 380)
    blue, red, grey = (31, 90, 200), (200, 40, 40), (120, 120, 120)
    # left: entries read per pod per second (blue) and own groups' events (grey); the baseline
    # (one shard, every pod reads everything) at the largest pod count in red
    read = [mean(r, "entries_read_per_s") for r in rows]  # type: ignore[arg-type]
    own = [mean(r, "own_events_per_s") for r in rows]  # type: ignore[arg-type]
    series: list[tuple[list[float | None], Color]] = [(list(own), grey), (list(read), blue)]
    if baseline:
        base = mean(baseline[0]["per_pod"], "entries_read_per_s")  # type: ignore[arg-type]
        series.append(([None] * (len(xs) - 1) + [base], red))
    panel(c, 70, 20, 360, 300, xs, series)
    # right: CPU ms per delivered message per pod
    cpu = [mean(r, "cpu_ms_per_delivered") for r in rows]  # type: ignore[arg-type]
    cseries: list[tuple[list[float | None], Color]] = [(list(cpu), blue)]
    if baseline:
        b = mean(baseline[0]["per_pod"], "cpu_ms_per_delivered")  # type: ignore[arg-type]
        cseries.append(([None] * (len(xs) - 1) + [b], red))
    panel(c, 520, 20, 360, 300, xs, cseries)
    return c.png()


if __name__ == "__main__":
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    target.write_bytes(chart(json.loads(source.read_text())))
    print(f"wrote {target}")
