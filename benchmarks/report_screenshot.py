"""Screenshot of an interactive run report (``report.html``) with a problem open and a step clicked.

    python benchmarks/report_screenshot.py outputs/run/report/report.html benchmarks/results/run_smollm2/report_html.png

Uses Playwright with the system's Chromium (``chromium`` on PATH, or ``SPHERE_RAY_CHROMIUM``).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path


def main() -> None:
    """Open the report, pick the problem with the most pairs, click its first kept step, save a PNG."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("png", type=Path)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("SPHERE_RAY_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        page.goto(args.report.resolve().as_uri())
        items = page.locator("#problems .item")
        counts = [int(items.nth(i).get_attribute("data-pairs")) for i in range(items.count())]
        items.nth(max(range(len(counts)), key=counts.__getitem__)).click()
        page.locator("button.node.max").first.click()
        page.screenshot(path=str(args.png))
        browser.close()


if __name__ == "__main__":
    main()
