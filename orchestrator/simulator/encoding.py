"""cPanel's HTML encoder, the one way the simulator escapes what ClamScanner reports."""

from __future__ import annotations

#: `Cpanel::Encoder::Tiny::safe_html_encode_str`: these five characters, the quote as `&#39;`
#: (Python's `html.escape` writes `&#x27;`, which no cPanel server sends).
_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})


def safe_html_encode(text: str) -> str:
    """`text` as cPanel's encoder writes it (cpanel-api.md 3.3, 3.4)."""
    return text.translate(_ENTITIES)


def current_file(path: str) -> str:
    """`get_scan_status.current_file`: encoded, with CR and LF removed (cpanel-api.md 3.3)."""
    return safe_html_encode(path.replace("\r", "").replace("\n", ""))
