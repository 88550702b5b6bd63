"""Charts as SVG, drawn on the server: no script, nothing fetched, readable with JavaScript off.

Markup is built from constant templates with `Markup.format`, which escapes every value put in
(tags and statuses come from the database and from logs). Each chart is an image with a title for
screen readers; the pages print the same numbers in a table beside it. The colours keep text
contrast on white (WCAG AA)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

BAR_COLOUR = "#1d4f91"
TEXT_COLOUR = "#1f2328"
GRID_COLOUR = "#d0d7de"
# One colour per failure status, in order: 4xx in browns, 5xx in reds and purple.
STATUS_COLOURS = {
    4: ("#8a4b00", "#b35c00", "#6b5d00", "#5c3d1e"),
    5: ("#b3261e", "#7a1f5c", "#8c2f39", "#5b2a86"),
}
OTHER_COLOUR = "#57606a"

_OPEN = Markup(
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" role="img" class="chart" '
    'font-size="13" font-family="sans-serif"><title>{}</title>'
)
_TEXT = Markup('<text x="{}" y="{}" text-anchor="{}" fill="{}">{}</text>')
_BAR = Markup('<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>')
_SEGMENT = Markup(
    '<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"><title>{}</title></rect>'
)
_GRID = Markup('<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}"/>')
_CLOSE = Markup("</svg>")


def horizontal_bars(rows: Sequence[tuple[str, int]], title: str) -> Markup:
    """One bar per (label, value), in the order given; the value is written at the bar's end."""
    label_width, bar_width, row_height = 120, 300, 28
    widest = max((value for _, value in rows), default=0) or 1
    parts = [_OPEN.format(label_width + bar_width + 60, row_height * len(rows) + 8, title)]
    for i, (label, value) in enumerate(rows):
        y, length = 4 + i * row_height, round(bar_width * value / widest)
        parts += [
            _TEXT.format(label_width - 8, y + 18, "end", TEXT_COLOUR, label),
            _BAR.format(label_width, y + 4, length, row_height - 8, BAR_COLOUR),
            _TEXT.format(label_width + length + 6, y + 18, "start", TEXT_COLOUR, value),
        ]
    return Markup("").join([*parts, _CLOSE])


def status_colours(statuses: Sequence[int]) -> dict[int, str]:
    """A colour for each status, in status order; the same set of statuses gets the same colours."""
    colours, used = {}, {}
    for status in sorted(statuses):
        palette = STATUS_COLOURS.get(status // 100, (OTHER_COLOUR,))
        n = used[status // 100] = used.get(status // 100, -1) + 1
        colours[status] = palette[n % len(palette)]
    return colours


def stacked_columns(
    columns: Sequence[tuple[str, dict[int, int]]], colours: dict[int, str], title: str
) -> Markup:
    """One column per (label, {status: count}), its statuses stacked; at most eight labels on the
    time axis."""
    left, plot_width, plot_height = 48, 640, 200
    tallest = max((sum(counts.values()) for _, counts in columns), default=0) or 1
    step = plot_width / max(len(columns), 1)
    parts = [_OPEN.format(left + plot_width + 10, plot_height + 50, title)]
    for fraction in (0, 0.5, 1):
        y = 10 + plot_height * (1 - fraction)
        parts += [
            _GRID.format(left, left + plot_width, y, y, GRID_COLOUR),
            _TEXT.format(left - 6, y + 4, "end", TEXT_COLOUR, round(tallest * fraction)),
        ]
    every = -(-len(columns) // 8) or 1
    for i, (label, counts) in enumerate(columns):
        x, top = left + i * step, 10 + plot_height
        for status, count in sorted(counts.items()):
            height = plot_height * count / tallest
            top -= height
            tip = f"{label}: {count} × {status}"
            parts.append(_SEGMENT.format(x + 1, top, max(step - 2, 1), height, colours[status], tip))
        if i % every == 0:
            parts.append(_TEXT.format(f"{x + step / 2:.1f}", plot_height + 30, "middle", TEXT_COLOUR, label))
    return Markup("").join([*parts, _CLOSE])
