"""The README's demo screenshot: start `stance demo` on a results folder, pick the first
example keyframe in a headless Chromium (with its true motion when --true-motion), drag an
arrow from its last object, generate, and save the page as a PNG.

    .venv/bin/python scripts/demo_screenshot.py --results results --out docs/demo.png
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from stance.demo import model as demo_model
from stance.demo import server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--out", type=Path, default=Path("docs/demo.png"))
    parser.add_argument("--drag", type=float, nargs=2, default=(-12, 0), help="px, image")
    parser.add_argument("--window", type=int, nargs=2, default=(1300, 1000), help="px")
    parser.add_argument(
        "--true-motion", action="store_true", help="open the example with its true motion"
    )
    args = parser.parse_args()

    model = demo_model.find_model(args.results)
    app = server.App(model, args.results)
    httpd = server.serve(app, port=0)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    size = f"--window-size={args.window[0]},{args.window[1]}"
    for flag in ("--headless=new", "--no-sandbox", size):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        wait = WebDriverWait(driver, 300)
        driver.get(f"http://127.0.0.1:{httpd.server_address[1]}/")
        wait.until(lambda d: d.find_elements(By.ID, "example-0"))
        if args.true_motion:
            driver.find_element(By.ID, "true-motion").click()
        driver.find_element(By.ID, "example-0").click()
        wait.until(lambda d: app.sessions)
        sess = next(iter(app.sessions.values()))
        labels = sess.labels
        ys, xs = (labels == labels.max()).nonzero()  # one object: the last label
        x, y = int(xs.mean()), int(ys.mean())
        scale = 384 / model.size
        canvas = driver.find_element(By.ID, "canvas")

        def at(px, py):
            return ((px + 0.5) * scale - 192, (py + 0.5) * scale - 192)

        start, end = at(x, y), at(x + args.drag[0], y + args.drag[1])
        chain = ActionChains(driver).move_to_element_with_offset(canvas, *start).click_and_hold()
        chain.move_by_offset(end[0] - start[0], end[1] - start[1]).release().perform()
        wait.until(lambda d: "arrow (" in d.find_element(By.ID, "selected").text)
        driver.find_element(By.ID, "generate").click()
        status = driver.find_element(By.ID, "status")
        wait.until(
            lambda d: status.text.startswith("done") or status.get_attribute("class") == "error"
        )
        if status.get_attribute("class") == "error":
            raise SystemExit(f"the page says: {status.text}")
        driver.execute_script("window.scrollTo(0, 0)")
        time.sleep(1.5)  # let the video show a later frame
        args.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.out))
        print(f"screenshot -> {args.out}")
    finally:
        driver.quit()
        httpd.shutdown()


if __name__ == "__main__":
    main()
