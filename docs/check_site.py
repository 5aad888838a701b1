"""Load pages of the built documentation site in headless Chromium, as a reader would.

For each page: no JavaScript error, no failed resource (script, style sheet, image) and every image
loaded (``complete`` with a natural width). A copy of the page with a small probe script in its
``<head>`` is loaded from the same folder (so relative links resolve), and removed afterwards.

Usage::

    python docs/check_site.py docs/_build/html [--screenshots DIR] [PAGE ...]

Exit status 0 when every page passes, 1 when one fails (each problem on one line), 2 on bad
arguments. Without Chromium it says so and exits 0: the site still builds (``make docs``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# page -> the number of images it must show at least (the landing figure, the example's figure)
PAGES = {
    "index.html": 1,
    "api/generated/conjugacy.koopman_spectrum.html": 0,
    "auto_examples/linear_system.html": 1,
}
PROBE = """<script>(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    var t = e.target;
    errors.push(t && t !== window && (t.src || t.href) ? "failed to load " + (t.src || t.href)
                                                      : "error: " + e.message);
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    errors.push("unhandled rejection: " + e.reason);
  });
  var consoleError = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    setTimeout(function () {
      var images = Array.prototype.slice.call(document.images);
      var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
      var root = document.documentElement;
      root.setAttribute("data-check-images", (images.length - broken.length) + "/" + images.length);
      root.setAttribute("data-check-broken", broken.map(function (i) {
        return i.getAttribute("src"); }).join(" "));
      root.setAttribute("data-check-errors", errors.join(" | "));
      root.setAttribute("data-check-done", "1");
    }, 500);
  });
})();</script>"""
_ATTR = re.compile(r'data-check-([a-z]+)="([^"]*)"')


def chromium() -> str | None:
    """The headless browser to use: Debian's ``chromium`` (or a Chrome), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _browse(exe: str, url: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
           "--window-size=1280,4000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def check_page(page: Path, exe: str, screenshot: Path | None = None, min_images: int = 0
               ) -> list[str]:
    """Problems of one HTML page in headless Chromium: an empty list when it loads cleanly.

    Parameters
    ----------
    page : Path
        An HTML file of the built site.
    exe : str
        The Chromium executable (:func:`chromium`).
    screenshot : Path, optional
        Where to write a PNG screenshot of the page as loaded.
    min_images : int
        The page must show at least this many images (a gallery page without its figure fails).

    Returns
    -------
    list of str
        One line per problem: a JavaScript error, a resource that failed to load, an image that
        did not load, too few images, or a probe that never finished.
    """
    text = page.read_text(encoding="utf-8")
    head = re.search(r"<head[^>]*>", text)
    if head is None:
        return [f"{page}: no <head> element"]
    text = text.replace('loading="lazy"', 'loading="eager"')  # a reader scrolls; the probe does not
    probe = page.with_name(f".{page.stem}.check.html")
    probe.write_text(text[: head.end()] + PROBE + text[head.end():], encoding="utf-8")
    try:
        with tempfile.TemporaryDirectory() as profile:
            res = _browse(exe, probe.resolve().as_uri(), Path(profile), "--dump-dom")
            if screenshot is not None:
                _browse(exe, page.resolve().as_uri(), Path(profile), f"--screenshot={screenshot}")
    finally:
        probe.unlink()
    root = re.search(r"<html[^>]*>", res.stdout)
    found = dict(_ATTR.findall(root.group(0))) if root else {}
    if res.returncode != 0 or found.get("done") != "1":
        return [f"{page}: the page did not finish loading in Chromium ({res.stderr.strip()[-300:]})"]
    problems = [f"{page}: {e}" for e in found["errors"].split(" | ") if e]
    if found["broken"]:
        problems.append(f"{page}: images that did not load: {found['broken']} ({found['images']})")
    loaded = int(found["images"].split("/")[0])
    if loaded < min_images:
        problems.append(f"{page}: {loaded} images loaded, expected at least {min_images}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the built site, e.g. docs/_build/html")
    parser.add_argument("pages", nargs="*", default=list(PAGES), help="pages relative to SITE")
    parser.add_argument("--screenshots", type=Path, help="write a PNG of each page here")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        parser.error(f"site {args.site} has no index.html: build it first (make docs)")
    missing = [p for p in args.pages if not (args.site / p).is_file()]
    if missing:
        parser.error(f"pages not in {args.site}: {', '.join(missing)}")
    exe = chromium()
    if exe is None:
        print("check_site: no chromium installed (apt-get install chromium); pages not checked")
        return 0
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    problems = []
    for name in args.pages:
        shot = args.screenshots / (Path(name).stem + ".png") if args.screenshots else None
        problems += check_page(args.site / name, exe, shot, PAGES.get(name, 0))
    for line in problems:
        print(line)
    print(f"check_site: {len(args.pages)} pages, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
