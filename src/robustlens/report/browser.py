"""Open a report in headless Chromium: take a screenshot and check that its plots rendered.

The report carries a small inline script that, on ``load``, writes into ``<body>``:
``data-plots`` (how many ``img.plot`` finished loading with a non-zero natural width),
``data-plots-total`` and ``data-errors`` (a JSON list of script errors and
``console.error`` messages). :func:`screenshot` runs Chromium twice on the file, once with
``--screenshot`` and once with ``--dump-dom``, and reads those attributes back from the DOM;
console messages Chromium logs to stderr are collected too.

Chromium is the Debian package (``scripts/install_browser.sh`` installs it).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["CANDIDATES", "body_data", "dump_dom", "find_chromium", "screenshot"]

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)
_CONSOLE = re.compile(r"CONSOLE\(\d+\)\]\s*\"?(.*?)\"?, source:", re.S)


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable (``/usr/bin/chromium`` first), or None."""
    for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"):
        if os.access(p, os.X_OK):
            return p
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def body_data(dom: str) -> dict[str, str]:
    """The ``data-*`` attributes of ``<body>`` in a dumped DOM, names without ``data-``.

    Example:
        >>> body_data('<html><body class="x" data-plots="3" data-errors="[&quot;e&quot;]">')
        {'plots': '3', 'errors': '["e"]'}
    """
    m = re.search(r"<body\b([^>]*)>", dom)
    if not m:
        return {}
    return {k: html.unescape(v) for k, v in re.findall(r'\bdata-([\w-]+)="([^"]*)"', m.group(1))}


def _chromium(chromium: str | None) -> str:
    """The given executable, else :func:`find_chromium`'s, else a ``FileNotFoundError``."""
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError(
            "no Chromium found (looked for /usr/bin/chromium, chromium-browser, google-chrome); "
            "install it with scripts/install_browser.sh (apt-get install chromium)"
        )
    return exe


def _run(
    exe: str, mode: str, page: Path, width: int, height: int, timeout: float
) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run on ``page`` in a fresh profile (``mode``: what it outputs)."""
    args = [mode, f"--window-size={width},{height}", "--virtual-time-budget=10000", page.as_uri()]
    with tempfile.TemporaryDirectory(prefix="robustlens-chromium-") as profile:
        cmd = [exe, *_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "HOME": profile},
        )


def screenshot(
    html_path: str | os.PathLike[str],
    png_path: str | os.PathLike[str],
    width: int = 1400,
    height: int = 3000,
    timeout: float = 120.0,
    chromium: str | None = None,
) -> dict[str, Any]:
    """Render ``html_path`` in headless Chromium, save a PNG, report plots and script errors.

    Args:
        html_path: the report file.
        png_path: where the screenshot goes (the top ``width`` x ``height`` pixels).
        width: window width in CSS pixels.
        height: window height in CSS pixels.
        timeout: seconds allowed for each Chromium run.
        chromium: the executable (default: :func:`find_chromium`).

    Returns:
        ``{"png": path, "png_bytes": int, "plots": int | None, "plots_total": int | None,
        "errors": [messages], "ready": bool, "data": {every data-* attribute of <body>},
        "chromium": exe, "returncodes": [int, int], "stderr_tail": str}``. ``plots`` is None
        when the page's script never ran.

    Raises:
        FileNotFoundError: no Chromium (install it with ``scripts/install_browser.sh``), or
            the HTML file does not exist.
    """
    exe = _chromium(chromium)
    src = Path(html_path).resolve()
    if not src.exists():
        raise FileNotFoundError(f"report {src} does not exist; write it with write_report first")
    png = Path(png_path).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    if png.exists():
        png.unlink()
    shot = _run(exe, f"--screenshot={png}", src, width, height, timeout)
    info = dump_dom(src, width, height, timeout, exe)
    errors = info["errors"] + _console_errors(shot.stderr)
    return {
        **{k: v for k, v in info.items() if k not in ("dom", "returncode", "stderr_tail")},
        "png": str(png),
        "png_bytes": png.stat().st_size if png.exists() else 0,
        "errors": list(dict.fromkeys(errors)),
        "returncodes": [shot.returncode, info["returncode"]],
        "stderr_tail": (shot.stderr[-1000:] + info["stderr_tail"])[-2000:],
    }


def _console_errors(stderr: str) -> list[str]:
    return [m.strip() for m in _CONSOLE.findall(stderr) if "Uncaught" in m or "Error" in m]


def dump_dom(
    html_path: str | os.PathLike[str],
    width: int = 1400,
    height: int = 3000,
    timeout: float = 120.0,
    chromium: str | None = None,
) -> dict[str, Any]:
    """Load ``html_path`` in headless Chromium and read back the DOM after ``load``.

    Returns:
        ``{"dom": str, "data": {data-* of <body>}, "plots": int | None, "plots_total":
        int | None, "errors": [messages], "ready": bool, "chromium": exe, "returncode": int,
        "stderr_tail": str}``.
    """
    exe = _chromium(chromium)
    dom = _run(exe, "--dump-dom", Path(html_path).resolve(), width, height, timeout)
    data = body_data(dom.stdout)
    plots, total = data.get("plots"), data.get("plots-total")
    errors: list[str] = []
    raw = data.get("errors")
    if raw:
        try:
            errors += [str(e) for e in json.loads(raw)]
        except json.JSONDecodeError:
            errors.append(f"unreadable data-errors attribute: {raw[:200]}")
    errors += _console_errors(dom.stderr)
    return {
        "dom": dom.stdout,
        "data": data,
        "plots": int(plots) if plots is not None and plots.isdigit() else None,
        "plots_total": int(total) if total is not None and total.isdigit() else None,
        "errors": list(dict.fromkeys(errors)),
        "ready": data.get("ready") == "1",
        "chromium": exe,
        "returncode": dom.returncode,
        "stderr_tail": dom.stderr[-1000:],
    }
