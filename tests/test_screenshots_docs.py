"""The README's screenshots (``make screenshots``): every image it shows is there and is a real PNG of a page, every
PNG of docs/images is shown (none stale), and the Makefile target runs the generator. No browser."""

from __future__ import annotations

import re
import struct

from targets import ROOT

IMAGES = ROOT / "docs" / "images"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def referenced() -> set[str]:
    return set(re.findall(r"docs/images/([\w.-]+\.png)", (ROOT / "README.md").read_text()))


def test_the_readme_shows_screenshots():
    assert len(referenced()) >= 5
    assert "Regenerate them with `make screenshots`." in (ROOT / "README.md").read_text()


def test_every_referenced_image_is_a_png_of_a_page():
    for name in sorted(referenced()):
        path = IMAGES / name
        assert path.is_file(), f"README shows docs/images/{name}, which does not exist (make screenshots)"
        head = path.read_bytes()[:24]
        assert head[:8] == PNG_SIGNATURE, f"{name} is not a PNG"
        assert head[12:16] == b"IHDR", f"{name}: no IHDR chunk first"
        width, height = struct.unpack(">II", head[16:24])
        assert width >= 800 and height >= 500, f"{name} is {width}x{height}, not a page"


def test_no_stale_image():
    stale = sorted({p.name for p in IMAGES.glob("*.png")} - referenced())
    assert not stale, f"in docs/images but not shown by README.md: {stale}"


def test_make_screenshots_runs_the_generator():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^screenshots:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "no screenshots target in the Makefile"
    assert "scripts/screenshots.py" in recipe.group(1)
    assert re.search(r"^\.PHONY:.*\bscreenshots\b", makefile, re.M)
    assert (ROOT / "scripts" / "screenshots.py").is_file()
