"""Regenerate docs/report_index.png, the README's picture of the report's index page:

    python docs/screenshot.py [reports/index.html]

Drives Debian's chromium ($XAIBENCH_CHROMIUM or `chromium` on PATH) through Playwright,
like the browser test; the PNG is scaled to 1000 px wide and palette-quantised (small)."""

import io
import os
import shutil
import sys
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main(page: str = "reports/index.html", out: str = "docs/report_index.png") -> None:
    browser_path = os.environ.get("XAIBENCH_CHROMIUM") or shutil.which("chromium")
    if not browser_path:
        sys.exit("chromium not found: apt-get install -y chromium (or set XAIBENCH_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 860})
        tab.goto(Path(page).resolve().as_uri())
        png = tab.screenshot()
        browser.close()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.resize((1000, round(image.height * 1000 / image.width)), Image.LANCZOS)
    image.quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"{out}: {Path(out).stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(*sys.argv[1:])
