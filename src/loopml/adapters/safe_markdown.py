"""A small, safe subset of Markdown as HTML, for text people wrote (model card sections).

Blocks: paragraphs, ``#`` headings (shown one level under the page's section headings),
``-``/``*``/``+`` and ``1.`` lists, fenced code blocks and ``>`` quotes. Inline:
``**bold**``, ``*emphasis*``, ```code``` and backslash escapes. Everything else, links
and raw HTML included, is shown as the text it is: every piece of the input reaches the
page through :func:`html.escape`, and the only tags in the output are the fixed ones
written here, without attributes. HTML comments are dropped, as a Markdown renderer
would hide them.
"""

from __future__ import annotations

import re
from html import escape

_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}(?P<level>#{1,6})[ \t]+(?P<text>.*?)(?:[ \t]+#+)?[ \t]*$")
_BULLET = re.compile(r"^ {0,3}[-*+][ \t]+(?P<text>.*)$")
_NUMBERED = re.compile(r"^ {0,3}\d{1,9}[.)][ \t]+(?P<text>.*)$")
_QUOTE = re.compile(r"^ {0,3}>[ \t]?(?P<text>.*)$")
_INLINE = re.compile(
    r"\\(?P<escaped>[!-/:-@\[-`{-~])"  # a backslash escape of ASCII punctuation
    r"|(?P<ticks>`+)(?P<code>.+?)(?P=ticks)"
    r"|\*\*(?P<strong>[^*\s](?:.*?[^\s])?)\*\*"
    r"|(?<![\w*])\*(?P<em>[^*\s](?:[^*]*?[^*\s])?)\*(?![\w*])"
)


def markdown_html(text: str) -> str:
    """``text`` as HTML blocks (see the module docstring for what is understood)."""
    blocks = _Blocks()
    lines = _COMMENT.sub("", text).splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if (fence := _FENCE.match(line)) is not None:
            blocks.flush()
            code, i = _fenced(lines, i, fence["fence"])
            blocks.out.append(f"<pre><code>{escape(code)}</code></pre>")
        elif not line.strip():
            blocks.flush()
        else:
            blocks.add(line)
    blocks.flush()
    return "".join(blocks.out)


class _Blocks:
    """The blocks of one text: those finished (``out``) and the one being read."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.paragraph: list[str] = []
        self.items: list[list[str]] = []
        self.list_tag = ""
        self.quote: list[str] = []

    def add(self, line: str) -> None:
        """One non-blank line outside a code block."""
        if (quoted := _QUOTE.match(line)) is not None:
            if not self.quote:
                self.flush()
            self.quote.append(quoted["text"])
        elif (heading := _HEADING.match(line)) is not None:
            self.flush()
            tag = "h3" if len(heading["level"]) <= 3 else "h4"
            self.out.append(f"<{tag}>{inline_html(heading['text'])}</{tag}>")
        elif (item := _BULLET.match(line) or _NUMBERED.match(line)) is not None:
            tag = "ul" if item.re is _BULLET else "ol"
            if self.paragraph or self.quote or (self.items and tag != self.list_tag):
                self.flush()
            self.list_tag = tag
            self.items.append([item["text"]])
        elif self.items and not self.paragraph:
            self.items[-1].append(line.strip())  # a continuation of the last item
        else:
            if self.quote:
                self.flush()
            self.paragraph.append(line.strip())

    def flush(self) -> None:
        """Finish the block being read, if any."""
        if self.paragraph:
            self.out.append(f"<p>{inline_html(' '.join(self.paragraph))}</p>")
            self.paragraph.clear()
        if self.items:
            body = "".join(f"<li>{inline_html(' '.join(item))}</li>" for item in self.items)
            self.out.append(f"<{self.list_tag}>{body}</{self.list_tag}>")
            self.items.clear()
        if self.quote:
            self.out.append(f"<blockquote>{markdown_html(chr(10).join(self.quote))}</blockquote>")
            self.quote.clear()


def inline_html(text: str) -> str:
    """One line of text with ``**bold**``, ``*emphasis*`` and ```code``` as HTML."""
    parts: list[str] = []
    position = 0
    for match in _INLINE.finditer(text):
        parts.append(escape(text[position : match.start()]))
        position = match.end()
        if match["escaped"] is not None:
            parts.append(escape(match["escaped"]))
        elif match["code"] is not None:
            parts.append(f"<code>{escape(match['code'].strip())}</code>")
        elif match["strong"] is not None:
            parts.append(f"<strong>{inline_html(match['strong'])}</strong>")
        else:
            parts.append(f"<em>{inline_html(match['em'])}</em>")
    parts.append(escape(text[position:]))
    return "".join(parts)


def _fenced(lines: list[str], start: int, fence: str) -> tuple[str, int]:
    """The code of a block opened by ``fence`` before line ``start``, and the line after
    its closing fence (the end of the text when it is never closed)."""
    body: list[str] = []
    i = start
    while i < len(lines):
        closing = _FENCE.match(lines[i])
        i += 1
        if closing and closing["fence"][0] == fence[0] and len(closing["fence"]) >= len(fence):
            break
        body.append(lines[i - 1])
    return "\n".join(body), i
