"""Python source as HTML with token classes, made with the standard library's tokenizer
(no JavaScript highlighter to ship, and every character escaped on the server)."""

from __future__ import annotations

import builtins
import html
import io
import keyword
import token
import tokenize

_BUILTINS = frozenset(dir(builtins))
# Python 3.12 splits f-strings into parts; 3.10 and 3.11 give one STRING token
_FSTRING_PARTS = {
    getattr(token, part)
    for part in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
    if hasattr(token, part)
}


def _kind(tok: tokenize.TokenInfo, previous: str) -> str:
    if tok.type == token.NAME:
        if keyword.iskeyword(tok.string) or keyword.issoftkeyword(tok.string):
            return "kw"
        if previous in ("def", "class"):
            return "fn"
        if tok.string in _BUILTINS:
            return "bi"
        return ""
    if tok.type == token.STRING or tok.type in _FSTRING_PARTS:
        return "str"
    if tok.type == token.COMMENT:
        return "com"
    if tok.type == token.NUMBER:
        return "num"
    if tok.type == token.OP and tok.string == "@":
        return "dec"
    return ""


def python_html(source: str) -> list[str]:
    """One HTML string per source line; plain escaped text if the file does not tokenize."""
    lines = source.splitlines()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return [html.escape(line) for line in lines]
    spans: dict[int, list[tuple[int, int, str]]] = {}
    previous = ""
    for tok in tokens:
        kind = _kind(tok, previous)
        if tok.type not in (token.NL, token.NEWLINE, token.INDENT, token.DEDENT):
            previous = tok.string
        if not kind:
            continue
        (row, col), (end_row, end_col) = tok.start, tok.end
        for line_no in range(row, end_row + 1):
            start = col if line_no == row else 0
            stop = end_col if line_no == end_row else len(lines[line_no - 1])
            spans.setdefault(line_no, []).append((start, stop, kind))
    out = []
    for number, line in enumerate(lines, start=1):
        parts, cursor = [], 0
        for start, stop, kind in spans.get(number, []):
            parts.append(html.escape(line[cursor:start]))
            parts.append(f'<span class="{kind}">{html.escape(line[start:stop])}</span>')
            cursor = stop
        parts.append(html.escape(line[cursor:]))
        out.append("".join(parts))
    return out
