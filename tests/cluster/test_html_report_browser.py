"""The HTML report in a real headless browser (Debian's Chromium driven by Playwright): click a node, read the step.

CI installs both (``make test``: Playwright from PyPI into .venv, Chromium from the system's packages). Where
no Chromium can be installed the test is skipped with that reason, never passed silently.
"""

import os
import shutil

import pytest
from golden import stage1_report_rows

from sphere_ray.pipeline.html_report import build_html, round_data

CHROMIUM = os.environ.get("SPHERE_RAY_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    if not CHROMIUM:
        pytest.skip("no Chromium on this machine (apt-get install chromium, or set SPHERE_RAY_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api")
    trees, pairs = stage1_report_rows()
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(build_html("golden run", [round_data(1, "fake-policy", trees, pairs)]), encoding="utf-8")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        yield page, errors
        browser.close()


def test_click_a_node_and_read_its_step_score_and_pairs(page):
    page, errors = page
    page.click("[data-problem='p1']")
    node = page.locator("button.node", has_text="A2b").first
    node.click()
    assert page.locator("#step-text").inner_text() == "A2b"
    assert page.locator("[data-field='PRM p(s)']").inner_text() == "0.950"
    assert page.locator("[data-field='kept']").inner_text() == "max"
    panel = page.locator("#node-panel").inner_text()
    assert "in 2 pair(s)" in panel and "(stage 1, step)" in panel and "(stage 1, trajectory)" in panel
    page.locator("button.node", has_text="A2c").first.click()  # the pruned sibling: the step pair's rejected side
    assert page.locator("#step-text").inner_text() == "A2c" and "rejected side of pair" in page.inner_text(
        "#node-panel"
    )
    assert page.locator(".pair").count() > 0 and not errors


def test_filters_hide_problems_of_other_stages(page):
    page, _ = page
    page.select_option("#stage", "1")
    assert page.locator("[data-problem='p1']").count() == 1
    page.select_option("#outcome", "all")
    page.fill("#query", "no such problem")
    assert page.locator("[data-problem='p1']").count() == 0
