"""Frames of one segment as RGB arrays: cards drawn once with Pillow, images panned and
zoomed per frame (Ken Burns), dips to black between segments.

Everything that does not move is drawn once per segment into a base image; a frame is a
copy of the base with the moving parts written into it, so a 720p frame costs a few
milliseconds. Frames that repeat the previous one exactly are reported as such, so the
encoder converts them to YUV only once.
"""

from __future__ import annotations

import functools
import math
from importlib import resources

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from pocdojo.video.plan import IntroCard, OutroCard, PocCard, RenderSpec, Segment

Frame = npt.NDArray[np.uint8]
FONT_FILES = {"regular": "DejaVuSans.ttf", "bold": "DejaVuSans-Bold.ttf"}
# Dark, calm backgrounds (top, bottom); one per segment in turn.
PALETTE = (
    ((24, 32, 58), (52, 28, 74)),
    ((16, 44, 56), (24, 76, 88)),
    ((40, 24, 48), (86, 36, 64)),
    ((20, 40, 32), (36, 84, 64)),
    ((44, 34, 20), (92, 60, 28)),
    ((26, 26, 40), (58, 58, 96)),
)
ACCENT = (255, 196, 92)
TEXT = (244, 244, 248)
MUTED = (196, 200, 214)
FADE_S = 0.4
ZOOM = 1.12
CHART_GROW_S = 0.8


@functools.cache
def font(weight: str, size: int) -> ImageFont.FreeTypeFont:
    """The shipped DejaVu Sans (full Latin, Greek, Cyrillic): no system font is used."""
    path = resources.files("pocdojo.video").joinpath("fonts", FONT_FILES[weight])
    with resources.as_file(path) as real:
        return ImageFont.truetype(str(real), size)


def wrap(text: str, face: ImageFont.FreeTypeFont, max_width: int, max_lines: int) -> list[str]:
    """Greedy word wrap by rendered width; the last line ends with an ellipsis if cut."""
    lines: list[str] = []
    current = ""
    words = text.split()
    for i, word in enumerate(words):
        candidate = f"{current} {word}".strip()
        if face.getlength(candidate) <= max_width or not current:
            current = candidate
            continue
        lines.append(current)
        current = word
        if len(lines) == max_lines:
            current = ""
            rest = " ".join(words[i:])
            lines[-1] = _ellipsize(f"{lines[-1]} {rest}", face, max_width)
            break
    if current:
        lines.append(current)
    return [_ellipsize(line, face, max_width) for line in lines[:max_lines]]


def _ellipsize(text: str, face: ImageFont.FreeTypeFont, max_width: int) -> str:
    if face.getlength(text) <= max_width:
        return text
    while text and face.getlength(text + "…") > max_width:
        text = text[:-1]
    return text.rstrip() + "…"


def gradient(
    width: int, height: int, top: tuple[int, int, int], bottom: tuple[int, int, int]
) -> Frame:
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    colours = (1 - t) * np.array(top, np.float32) + t * np.array(bottom, np.float32)
    return np.ascontiguousarray(np.broadcast_to(colours, (height, width, 3)).astype(np.uint8))


def cover(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` scaled to cover ``width`` x ``height`` (aspect kept), as RGB."""
    image = image.convert("RGB")
    scale = max(width / image.width, height / image.height)
    size = (
        max(width, math.ceil(image.width * scale)),
        max(height, math.ceil(image.height * scale)),
    )
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


class SegmentRenderer:
    """Draws frame ``i`` (0-based within the segment) of one segment."""

    def __init__(self, segment: Segment, spec: RenderSpec, images: list[Image.Image]) -> None:
        self.segment = segment
        self.spec = spec
        self.w, self.h = spec.width, spec.height
        self.u = min(self.w, self.h) / 720  # type scale
        self.portrait = self.h > self.w
        self.fade = max(1, round(FADE_S * spec.fps))
        if segment.kind == "outro":
            self.fade_out = max(1, round(1.0 * spec.fps))
        else:
            self.fade_out = self.fade
        top, bottom = PALETTE[segment.index % len(PALETTE)]
        canvas = Image.fromarray(gradient(self.w, self.h, top, bottom))
        self.draw = ImageDraw.Draw(canvas)
        self.panel = self._panel_box()
        self.sources: list[Image.Image] = []
        self.bars: list[tuple[int, int, int, int]] = []
        if segment.intro is not None:
            self._intro(segment.intro)
        elif segment.poc is not None:
            pw, ph = self.panel[2] - self.panel[0], self.panel[3] - self.panel[1]
            self.sources = [cover(img, round(pw * ZOOM), round(ph * ZOOM)) for img in images]
            self._poc(segment.poc, has_images=bool(self.sources))
        elif segment.outro is not None:
            self._outro(segment.outro)
        self.base: Frame = np.asarray(canvas, dtype=np.uint8).copy()
        del self.draw
        # What a frame without motion or fade shows (the bars fully grown).
        self.still = self.base.copy()
        self._draw_bars(self.still, 1.0)

    # ------------------------------------------------------------------ layout

    def _px(self, value: float) -> int:
        return round(value * self.u)

    def _panel_box(self) -> tuple[int, int, int, int]:
        if self.portrait:
            m = round(self.w * 0.06)
            return (m, round(self.h * 0.08), self.w - m, round(self.h * 0.44))
        return (
            round(self.w * 0.53),
            round(self.h * 0.16),
            round(self.w * 0.95),
            round(self.h * 0.84),
        )

    def _text_box(self) -> tuple[int, int, int]:
        """Left x, top y and width of the text column."""
        if self.portrait:
            m = round(self.w * 0.06)
            return m, round(self.h * 0.48), self.w - 2 * m
        m = round(self.w * 0.05)
        return m, round(self.h * 0.14), round(self.w * 0.44)

    def _text(
        self, xy: tuple[int, int], text: str, weight: str, size: int, fill: tuple[int, int, int]
    ) -> int:
        """Draw one line; returns its height."""
        face = font(weight, self._px(size))
        self.draw.text(xy, text, font=face, fill=fill)
        return round(face.size * 1.25)

    def _chips(
        self, x: int, y: int, width: int, labels: tuple[str, ...], fill: tuple[int, int, int]
    ) -> int:
        face = font("bold", self._px(20))
        pad, gap, height = self._px(10), self._px(8), round(face.size * 1.6)
        cx, cy = x, y
        for label in labels:
            text_w = round(face.getlength(label))
            chip_w = text_w + 2 * pad
            if cx + chip_w > x + width and cx > x:
                cx, cy = x, cy + height + gap
            if cy > y + 3 * (height + gap):
                break
            self.draw.rounded_rectangle(
                (cx, cy, cx + chip_w, cy + height), radius=height // 2, fill=fill
            )
            self.draw.text(
                (cx + pad, cy + (height - face.size) // 2 - 1), label, font=face, fill=(20, 20, 28)
            )
            cx += chip_w + gap
        return cy + height - y

    def _intro(self, card: IntroCard) -> None:
        cx = self.w // 2
        y = round(self.h * (0.30 if self.portrait else 0.24))
        for text, weight, size, fill in (
            (f"{card.year}", "bold", 120, ACCENT),
            ("a year of proofs of concept", "regular", 30, MUTED),
            (card.user_name, "bold", 54, TEXT),
            (card.tenant_name, "regular", 30, MUTED),
        ):
            face = font(weight, self._px(size))
            line = _ellipsize(text, face, round(self.w * 0.9))
            self.draw.text((cx, y), line, font=face, fill=fill, anchor="ma")
            y += round(face.size * 1.45)
        counts = f"{card.poc_count} PoCs · {card.language_count} languages · {card.tag_count} tags"
        face = font("regular", self._px(28))
        self.draw.text((cx, y + self._px(16)), counts, font=face, fill=TEXT, anchor="ma")

    def _poc(self, card: PocCard, *, has_images: bool) -> None:
        x, y, width = self._text_box()
        y += self._text(
            (x, y),
            f"#{card.number} of {card.total} · {card.built_on:%d %b %Y}",
            "regular",
            22,
            ACCENT,
        )
        y += self._px(8)
        for line in wrap(card.name, font("bold", self._px(46)), width, 2):
            y += self._text((x, y), line, "bold", 46, TEXT)
        y += self._px(14)
        y += self._chips(x, y, width, card.languages, ACCENT) + self._px(14)
        if card.tags:
            tags = " ".join(f"#{t}" for t in card.tags)
            for line in wrap(tags, font("regular", self._px(22)), width, 2):
                y += self._text((x, y), line, "regular", 22, MUTED)
            y += self._px(12)
        if card.excerpt:
            for line in wrap(card.excerpt, font("regular", self._px(24)), width, 5):
                y += self._text((x, y), line, "regular", 24, TEXT)
        x0, y0, x1, y1 = self.panel
        border = self._px(4)
        self.draw.rectangle(
            (x0 - border, y0 - border, x1 + border - 1, y1 + border - 1), fill=(255, 255, 255)
        )
        if not has_images:
            self.draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=(34, 38, 56))
            initial = (card.name.strip()[:1] or "?").upper()
            face = font("bold", round((y1 - y0) * 0.5))
            self.draw.text(
                ((x0 + x1) // 2, (y0 + y1) // 2), initial, font=face, fill=ACCENT, anchor="mm"
            )

    def _outro(self, card: OutroCard) -> None:
        x, y, width = self._text_box()
        if not self.portrait:
            y = round(self.h * 0.10)
        y += self._text((x, y), f"{card.year} in numbers", "bold", 52, ACCENT)
        y += self._px(10)
        y += self._text((x, y), f"{card.poc_count} PoCs built", "bold", 34, TEXT)
        y += self._text((x, y), f"{card.image_count} screenshots", "regular", 26, MUTED)
        tags = " ".join(f"#{t}" for t in card.top_tags)
        if tags:
            y += self._px(10)
            for line in wrap(tags, font("regular", self._px(22)), width, 4):
                y += self._text((x, y), line, "regular", 22, MUTED)
        # The chart: top languages as horizontal bars that grow in.
        if self.portrait:
            cx0, cy = x, y + self._px(40)
            cwidth = width
        else:
            cx0, cy = round(self.w * 0.53), round(self.h * 0.22)
            cwidth = round(self.w * 0.42)
            self._text((cx0, cy - self._px(50)), "top languages", "bold", 26, TEXT)
        top = max((n for _, n in card.top_languages), default=1)
        label_w = self._px(170)
        bar_h, gap = self._px(34), self._px(18)
        for name, count in card.top_languages:
            face = font("regular", self._px(22))
            self.draw.text(
                (cx0, cy + bar_h // 2),
                _ellipsize(name, face, label_w - 8),
                font=face,
                fill=TEXT,
                anchor="lm",
            )
            full = round((cwidth - label_w - self._px(60)) * count / top)
            self.bars.append((cx0 + label_w, cy, max(2, full), bar_h))
            face = font("bold", self._px(22))
            self.draw.text(
                (cx0 + label_w + full + self._px(10), cy + bar_h // 2),
                str(count),
                font=face,
                fill=MUTED,
                anchor="lm",
            )
            cy += bar_h + gap

    # ------------------------------------------------------------------ frames

    def frame(self, i: int) -> tuple[bool, Frame]:
        """Frame ``i`` and whether it equals frame ``i - 1`` exactly."""
        n = self.segment.frames
        if i > 0 and not self._differs(i) and not self._differs(i - 1):
            return True, self.still
        out = self.base.copy()
        if self.sources:
            self._ken_burns(out, i)
        self._draw_bars(out, min(1.0, i / self._grow_frames()))
        alpha = 1.0
        if i < self.fade:
            alpha = (i + 1) / (self.fade + 1)
        if i >= n - self.fade_out:
            alpha = min(alpha, (n - i) / (self.fade_out + 1))
        if alpha < 1.0:
            scaled = out.astype(np.uint16) * round(alpha * 256) >> 8
            out = scaled.astype(np.uint8)
        return False, out

    def _draw_bars(self, out: Frame, grow: float) -> None:
        for x, y, full, h in self.bars:
            out[y : y + h, x : x + max(1, round(full * _ease(grow)))] = ACCENT

    def _differs(self, i: int) -> bool:
        """Whether frame ``i`` is anything but the plain base image."""
        moving = bool(self.sources) or (bool(self.bars) and i <= self._grow_frames())
        return moving or i < self.fade or i >= self.segment.frames - self.fade_out

    def _grow_frames(self) -> int:
        return max(1, round(CHART_GROW_S * self.spec.fps))

    def _ken_burns(self, out: Frame, i: int) -> None:
        n = self.segment.frames
        per = n / len(self.sources)
        which = min(len(self.sources) - 1, int(i / per))
        t = (i - which * per) / max(1.0, per - 1)
        source = self.sources[which]
        x0, y0, x1, y1 = self.panel
        pw, ph = x1 - x0, y1 - y0
        # Alternate zoom in / zoom out and the pan direction from image to image.
        zoom = 1.0 + (ZOOM - 1.0) * (t if which % 2 == 0 else 1.0 - t)
        bw = min(float(source.width), pw * ZOOM / zoom)
        bh = min(float(source.height), ph * ZOOM / zoom)
        span_x, span_y = max(0.0, source.width - bw), max(0.0, source.height - bh)
        fx = t if which % 2 == 0 else 1.0 - t
        left, top = span_x * fx, span_y * (0.5 + 0.5 * (fx - 0.5))
        box = (left, top, min(float(source.width), left + bw), min(float(source.height), top + bh))
        view = source.resize((pw, ph), Image.Resampling.BILINEAR, box=box)
        out[y0:y1, x0:x1] = np.asarray(view, dtype=np.uint8)


def _ease(t: float) -> float:
    return 1 - (1 - t) ** 3
