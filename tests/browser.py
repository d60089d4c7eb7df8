"""Headless Chromium (Debian's chromium and chromium-driver, driven by selenium) for the HTML
report's tests: load a page from disk, and read back what a reader would see."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(CHROMIUM is None or DRIVER is None, reason="chromium and chromium-driver (.ci/run installs them)")


def open_page(path: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-background-networking", "--no-first-run"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.get(path.resolve().as_uri())
    return driver


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def screenshot_colours(driver: Any, path: Path) -> int:
    """How many distinct colours a screenshot of the page has (a blank page has one)."""
    from PIL import Image

    driver.save_screenshot(str(path))
    return len(Image.open(path).convert("RGB").getcolors(maxcolors=1 << 20) or [])


def image_widths(driver: Any) -> list[int]:
    return driver.execute_script("return Array.from(document.images).map(function (i) { return i.complete ? i.naturalWidth : 0; })")


def shown_cells(driver: Any) -> list[dict[str, str]]:
    """Every measured cell of the report tables, as the DOM holds it."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('td[data-column]')).filter(function (td) { return td.dataset.value !== ''; }).map(function (td) {"
        " var pub = td.querySelector('[data-published]');"
        " return {table: td.closest('table').dataset.table, backbone: td.dataset.backbone, column: td.dataset.column,"
        " value: td.dataset.value, text: td.querySelector('.v').textContent, published: pub ? pub.dataset.published : ''}; })")


def column_order(driver: Any, table: str, column: int) -> list[str]:
    """The backbone labels of a table's rows, top to bottom, after clicking the header of `column`."""
    header = driver.find_elements("css selector", f"table[data-table='{table}'] thead th")[column]
    header.click()
    return driver.execute_script(f"return Array.from(document.querySelectorAll(\"table[data-table='{table}'] tbody tr\")).map(function (tr) {{ return tr.cells[0].textContent.trim(); }})")
