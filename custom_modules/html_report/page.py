"""Building blocks of the static HTML reports: one self-contained page (inline style, no
script, nothing fetched from the network) whose links and images are relative paths, so
it opens from the file system and moves with its folder."""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Iterable, Sequence
from urllib.parse import quote

from custom_modules.formats import atomic_output

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1700px; }
h1 { font-size: 1.5em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
th { background: #f2f2f2; } td.num, th.num { text-align: right; }
.gallery { display: flex; flex-wrap: wrap; gap: 1em; }
.card { border: 1px solid #ccc; padding: 0.5em; max-width: 820px; }
.card img { max-width: 800px; width: 100%; height: auto; display: block; }
.card p { margin: 0.3em 0; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.3em;
          vertical-align: middle; border: 1px solid #555; }
.bad { color: #b00; font-weight: bold; } .good { color: #070; }
nav a { margin-right: 1em; }
"""


def esc(value: object) -> str:
    return html.escape(str(value))


def href(target: Path, page_dir: Path) -> str:
    """``target`` as a relative URL from the page's folder."""
    return quote(Path(os.path.relpath(target, page_dir)).as_posix())


def link(url: str, text: object) -> str:
    return f'<a href="{esc(url)}">{esc(text)}</a>'


def image(url: str, alt: str, lazy: bool = False) -> str:
    loading = ' loading="lazy"' if lazy else ''
    return f'<img src="{esc(url)}" alt="{esc(alt)}"{loading}>'


def swatch(rgb: Sequence[int]) -> str:
    """A small square of a class colour, as the overlays draw the class."""
    r, g, b = rgb
    return f'<span class="swatch" style="background: rgb({r}, {g}, {b})"></span>'


def table(header: Sequence[str], rows: Iterable[Sequence[str]],
          numeric: Sequence[int] = ()) -> str:
    """An HTML table; cells are HTML already (escape text with :func:`esc`), columns in
    ``numeric`` are right-aligned."""

    def row(cells: Sequence[str], tag: str) -> str:
        return '<tr>' + ''.join(
            f'<{tag}{" class=num" if i in numeric else ""}>{cell}</{tag}>'
            for i, cell in enumerate(cells)) + '</tr>'

    body = ''.join(row(r, 'td') for r in rows)
    head = row([esc(h) for h in header], 'th')
    return f'<table><thead>{head}</thead><tbody>{body}</tbody></table>'


def listed(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = (),
           limit: int = 25) -> str:
    """:func:`table` of the first ``limit`` rows, and how many more there are."""
    more = f'<p>{len(rows) - limit} more not listed.</p>' if len(rows) > limit else ''
    return table(header, rows[:limit], numeric) + more


def facts(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column table of (name, HTML value) without a header."""
    body = ''.join(f'<tr><th>{esc(name)}</th><td>{value}</td></tr>' for name, value in rows)
    return f'<table><tbody>{body}</tbody></table>'


def section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{"".join(parts)}</section>'


def nav(entries: Sequence[tuple[str, str]]) -> str:
    """Links to the page's sections: ``(anchor, title)``."""
    return '<nav>' + ''.join(link(f'#{a}', t) for a, t in entries) + '</nav>'


def write_page(path: Path, title: str, body: str) -> Path:
    """Write a complete page atomically."""
    text = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{esc(title)}</title><style>{STYLE}</style></head>\n'
            f'<body><h1>{esc(title)}</h1>\n{body}\n</body></html>\n')
    with atomic_output(path) as f:
        f.write(text)
    return path
