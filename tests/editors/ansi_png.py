"""Render a terminal screen (`tmux capture-pane -e` output: text with SGR colour codes) to a PNG."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
FG, BG = (220, 220, 220), (24, 24, 30)
# xterm's 16 colours
BASIC = [
    (0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16),
    (36, 114, 200), (188, 63, 188), (17, 168, 205), (229, 229, 229),
    (102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67),
    (59, 142, 234), (214, 112, 214), (41, 184, 219), (255, 255, 255),
]  # fmt: skip
SGR = re.compile(r"\x1b\[([0-9;:]*)m")


def _xterm256(n: int) -> tuple[int, int, int]:
    if n < 16:
        return BASIC[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return steps[n // 36], steps[n // 6 % 6], steps[n % 6]
    level = 8 + 10 * (n - 232)
    return level, level, level


def _apply(codes: list[int], fg, bg):
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            fg, bg = FG, BG
        elif 30 <= c <= 37 or 90 <= c <= 97:
            fg = BASIC[c - 30 if c < 90 else c - 82]
        elif 40 <= c <= 47 or 100 <= c <= 107:
            bg = BASIC[c - 40 if c < 100 else c - 92]
        elif c == 39:
            fg = FG
        elif c == 49:
            bg = BG
        elif c in (38, 48) and i + 1 < len(codes):
            if codes[i + 1] == 5 and i + 2 < len(codes):
                colour, i = _xterm256(codes[i + 2]), i + 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                colour, i = (codes[i + 2], codes[i + 3], codes[i + 4]), i + 4
            else:
                colour = FG if c == 38 else BG
            if c == 38:
                fg = colour
            else:
                bg = colour
        i += 1
    return fg, bg


def render(screen: str, out: Path, cursor: tuple[int, int] | None = None, size: int = 16) -> Path:
    """Draw `screen` (lines with SGR escapes) as a PNG at `out`, with a bar cursor at (x, y)."""
    font = ImageFont.truetype(FONT, size)
    left, top, right, bottom = font.getbbox("M")
    cw, ch = right, int(size * 1.35)
    lines = screen.rstrip("\n").split("\n")
    width = max(len(SGR.sub("", line)) for line in lines) if lines else 1
    img = Image.new("RGB", (cw * max(width, 1) + 16, ch * len(lines) + 16), BG)
    draw = ImageDraw.Draw(img)
    fg, bg = FG, BG
    for row, line in enumerate(lines):
        col, pos = 0, 0
        for m in [*SGR.finditer(line), None]:
            chunk = line[pos : m.start() if m else len(line)]
            for char in chunk:
                x, y = 8 + col * cw, 8 + row * ch
                if bg != BG:
                    draw.rectangle([x, y, x + cw, y + ch], fill=bg)
                draw.text((x, y), char, font=font, fill=fg)
                col += 1
            if m is None:
                break
            codes = [int(x) if x else 0 for x in re.split("[;:]", m.group(1))] or [0]
            fg, bg = _apply(codes, fg, bg)
            pos = m.end()
    if cursor is not None:
        x, y = 8 + cursor[0] * cw, 8 + cursor[1] * ch
        draw.rectangle([x, y + 1, x + 1, y + ch - 2], fill=FG)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out
