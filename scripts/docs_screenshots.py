"""Take the documentation's screenshots with a headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium, as tests/test_browser.py does).

    digitrec serve --port 8765 &
    digitrec evaluate src/digitrec/assets/digits-accurate --report /tmp/report --robustness-images 300
    PYTHONPATH=src python scripts/docs_screenshots.py --page http://127.0.0.1:8765 \
        --report /tmp/report/report.html

writes docs/images/drawing-page.png (the example digit drawn on the canvas) and
docs/images/report.png (the top of the report).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from digitrec.preprocess import preprocess

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"


def browser(width: int, height: int) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def draw(driver: webdriver.Chrome, digit: np.ndarray) -> None:
    """Trace a 28x28 digit's ink on the canvas, row by row, with pointer down / move / up."""
    canvas = driver.find_element(By.ID, "canvas")
    width = canvas.rect["width"]
    cell = width / 28

    def offset(v: float) -> int:  # from the canvas centre, in CSS pixels
        return round((v + 0.5) * cell - width / 2)

    actions = ActionChains(driver, duration=5)
    for y, row in enumerate(digit > 0.4):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(int), [0]])))
        for start, end in zip(edges[::2], edges[1::2], strict=True):
            actions.move_to_element_with_offset(canvas, offset(start), offset(y)).click_and_hold()
            actions.move_to_element_with_offset(canvas, offset(end - 1), offset(y)).release()
    actions.perform()
    WebDriverWait(driver, 30).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-pending") == "false")


def save(png: bytes, name: str, crop_height: int | None = None) -> None:
    """Save a screenshot as a small PNG (cropped to its top part, colours reduced)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if crop_height:
        image = image.crop((0, 0, image.width, min(crop_height, image.height)))
    target = IMAGES / name
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    print(f"wrote {target.relative_to(ROOT)} ({target.stat().st_size / 1024:.0f} KB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", default="http://127.0.0.1:8765", help="a running digitrec serve")
    parser.add_argument("--report", type=Path, default=Path("/tmp/report/report.html"))
    args = parser.parse_args()
    IMAGES.mkdir(parents=True, exist_ok=True)
    driver = browser(1000, 800)
    try:
        driver.get(args.page)
        draw(driver, preprocess(ROOT / "docs" / "examples" / "digit.jpg"))
        save(driver.get_screenshot_as_png(), "drawing-page.png")
        driver.set_window_size(1200, 900)
        driver.get(args.report.resolve().as_uri())
        save(driver.get_screenshot_as_png(), "report.png", crop_height=900)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
