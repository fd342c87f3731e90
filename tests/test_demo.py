"""The cue editor demo: its logic on synthetic keyframes, and the real page driven by a
headless Chromium (Selenium): upload, click, drag an arrow, generate, download the hints."""

import io
import json
import shutil
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stance import config, video
from stance.cues import hints
from stance.demo import server
from stance.demo import session as demo
from stance.train import components, tiny

MASS = config.defaults().cues.mass


def keyframe(size=64):
    image = np.full((size, size, 3), 120, np.uint8)
    image[20:32, 10:22] = (220, 40, 40)  # a red square: the object
    image[40:50, 40:52] = (40, 60, 220)
    return image


def png_bytes(image) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def test_a_click_selects_the_object_under_it_by_flood_fill():
    sess = demo.Session(keyframe=keyframe())
    mask = demo.mask_at(sess, 15, 25)
    assert mask.sum() == 144 and mask[20:32, 10:22].all()
    assert demo.select(sess, 15, 25) == 0 and demo.select(sess, 12, 30) == 0  # same object
    assert demo.select(sess, 45, 45) == 1
    with pytest.raises(demo.DemoError, match="more than half the image"):
        demo.mask_at(sess, 2, 2)
    with pytest.raises(demo.DemoError, match="outside the 64x64 image"):
        demo.select(sess, 70, 5)


def test_example_keyframes_select_rendered_instances():
    labels = np.zeros((64, 64), np.uint16)
    labels[5:9, 5:9] = 2
    sess = demo.Session(keyframe=keyframe(), labels=labels)
    assert demo.mask_at(sess, 6, 6).sum() == 16
    with pytest.raises(demo.DemoError, match="floor or background"):
        demo.mask_at(sess, 30, 30)


def test_a_drag_is_the_displacement_over_the_clip():
    sess = demo.Session(keyframe=keyframe())
    k = demo.select(sess, 15, 25)
    assert demo.set_arrow(sess, k, (15, 25), (31, 17), frames=9) == (2.0, -1.0)
    with pytest.raises(demo.DemoError, match="outside"):
        demo.set_arrow(sess, k, (15, 25), (90, 25), frames=9)
    with pytest.raises(demo.DemoError, match="does not exist"):
        demo.set_physics(sess, 3, 1.0, 0.0)
    with pytest.raises(demo.DemoError, match="positive"):
        demo.set_physics(sess, k, 0.0, 0.0)


def test_the_hint_bundle_rebuilds_the_same_cue(tmp_path):
    sess = demo.Session(keyframe=keyframe())
    demo.set_arrow(sess, demo.select(sess, 15, 25), (15, 25), (23, 25), frames=9)
    demo.set_physics(sess, demo.select(sess, 45, 45), 2.5, -0.1)
    with zipfile.ZipFile(io.BytesIO(demo.hint_bundle(sess))) as bundle:
        bundle.extractall(tmp_path)
    rebuilt = hints.load(tmp_path / "hints.yaml", MASS)
    np.testing.assert_array_equal(rebuilt.cue, demo.cue_clip(sess, MASS).cue)
    assert rebuilt.instances["u"].tolist() == [1.0, 0.0]
    assert rebuilt.instances["mass_kg"].tolist() == [1.0, 2.5]


def test_nothing_selected_and_bad_uploads_are_clear_errors():
    sess = demo.Session(keyframe=keyframe())
    with pytest.raises(demo.DemoError, match="no object selected"):
        demo.cue_clip(sess, MASS)
    with pytest.raises(demo.DemoError, match="nothing to download"):
        demo.hint_bundle(sess)
    with pytest.raises(demo.DemoError, match="not an image"):
        demo.from_upload(b"not a png", 48)
    resized = demo.from_upload(png_bytes(keyframe(100)), 48)
    assert resized.keyframe.shape == (48, 48, 3) and "resized from 100x100 to 48x48" in resized.note


def make_trained(root: Path, name: str = "rgb_only", identity: dict | None = None) -> Path:
    """A tiny stack and a 'trained' variant (rgb_only unless named) with random weights,
    as training leaves it (transformer/ + train.resolved.json)."""
    model_dir = root / "results" / "models" / "tiny-cogvideox-i2v"
    if not model_dir.exists():
        tiny.make_tiny(model_dir)
    trained = root / "results" / "train" / name
    identity = identity or {"aux": "none", "cue_mode": "dense_rope", "motion_tokens": 8}
    components.stance_transformer(str(model_dir), identity, False).save_pretrained(
        trained / "transformer"
    )
    record = {
        "model": config.TINY_MODELS["video"],
        "steps": 0,
        "data": [],
        "variant": {name: identity},
        "train": config.validate({})["train"],
    }
    (trained / "train.resolved.json").write_text(json.dumps(record))
    return trained


def test_the_best_variant_is_found_and_described(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(Path(__file__).parents[1] / "config.yaml", tmp_path / "config.yaml")
    with pytest.raises(demo.DemoError, match="no trained cue variant"):
        demo.find_model(Path("results"))
    make_trained(tmp_path)
    model = demo.find_model(Path("results"))
    assert model.name == "rgb_only" and model.size == 64
    assert "Dense RoPE, 8 motion tokens" in model.describe()
    assert "trained 0 steps on 0 clips" in model.describe()
    # with the tables written, the demo shows the variant they report as STANCE
    map2d = make_trained(tmp_path, "map2d", {"aux": "none", "cue_mode": "map2d"})
    assert demo.find_model(Path("results")).name == "rgb_only"  # Dense RoPE first
    (tmp_path / "results" / "evaluate").mkdir(parents=True)
    published = "paper row,paper Physics IQ (published),our row,our Physics IQ (this run)\n"
    published += "STANCE (Table 1),47.62,map2d,3.0\nSG-I2V,15.42,-,\n"
    (tmp_path / "results" / "evaluate" / "published.csv").write_text(published)
    assert demo.find_model(Path("results")).trained.resolve() == map2d.resolve()


def browser():
    """A headless Chromium driven by Selenium, or a skip saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        pytest.skip(
            "no Chromium/chromedriver: apt-get install chromium chromium-driver (.ci/run does)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    flags = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1200")
    for flag in flags:
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service

    return webdriver.Chrome(options=options, service=Service(driver))


@pytest.mark.browser
def test_the_page_draws_cues_generates_and_returns_the_hints(tmp_path, monkeypatch):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    monkeypatch.chdir(tmp_path)
    shutil.copy(Path(__file__).parents[1] / "config.yaml", tmp_path / "config.yaml")
    make_trained(tmp_path)
    model = demo.find_model(Path("results"))
    httpd = server.serve(server.App(model, Path("results")), port=0)
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    image = tmp_path / "upload.png"
    doubled = np.repeat(np.repeat(keyframe(), 2, axis=0), 2, axis=1)
    Image.fromarray(doubled).save(image)  # resized back to the model's 64 px, with a note
    driver = browser()
    try:
        wait = WebDriverWait(driver, 120)
        driver.get(url + "/")
        wait.until(lambda d: "Model: variant rgb_only" in d.find_element(By.ID, "model").text)
        driver.find_element(By.ID, "upload").send_keys(str(image))
        message = driver.find_element(By.ID, "message")
        wait.until(lambda d: "resized from 128x128 to 64x64" in message.text)
        canvas = driver.find_element(By.ID, "canvas")  # 384 px showing 64 px: 6 per pixel

        def at(x, y):  # image pixel's centre -> offset from the canvas centre (Selenium 4)
            return (x * 6 + 3 - 192, y * 6 + 3 - 192)

        ActionChains(driver).move_to_element_with_offset(canvas, *at(2, 2)).click().perform()
        wait.until(lambda d: "click on an object" in message.text)
        assert "Traceback" not in driver.page_source
        # drag the red square (image 10..21 x 20..31) 16 px right and 8 px up
        start, end = at(15, 25), at(31, 17)
        chain = ActionChains(driver).move_to_element_with_offset(canvas, *start).click_and_hold()
        chain.move_by_offset(end[0] - start[0], end[1] - start[1]).release().perform()
        wait.until(lambda d: "arrow (2.00, -1.00)" in d.find_element(By.ID, "selected").text)
        driver.execute_script(
            "const s = document.getElementById('mass'); s.value = Math.log(3.0);"
            "s.dispatchEvent(new Event('change'));"
        )
        wait.until(lambda d: "3.00" in d.find_element(By.ID, "mass-value").text)
        driver.find_element(By.ID, "generate").click()
        wait.until(
            lambda d: "/api/video/" in (d.find_element(By.ID, "result").get_attribute("src") or "")
        )
        assert message.get_attribute("class") != "error", message.text
        video_url = driver.find_element(By.ID, "result").get_attribute("src")
        hints_url = driver.find_element(By.ID, "download").get_attribute("href")
        (tmp_path / "out.mp4").write_bytes(urllib.request.urlopen(video_url).read())
        bundle = urllib.request.urlopen(hints_url).read()
    finally:
        driver.quit()
        httpd.shutdown()
    frames = video.read_video(tmp_path / "out.mp4")
    assert frames.shape[0] == model.frames and frames.shape[2] % 64 == 0
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        archive.extractall(tmp_path / "hints")
    cue = hints.load(tmp_path / "hints" / "hints.yaml", MASS)
    assert cue.instances["u"].tolist() == [2.0] and cue.instances["v"].tolist() == [-1.0]
    assert cue.instances["mass_kg"].tolist() == pytest.approx([3.0], abs=0.01)
    assert cue.labels.sum() == 144  # the red square: 12 x 12 px


def test_a_cancelled_request_is_dropped_quietly(caplog):
    """A page that cancels an image request closes the socket before the answer: the
    server drops it at debug level, with no traceback at ERROR."""

    class Gone(io.BytesIO):
        def write(self, data):
            raise BrokenPipeError(32, "Broken pipe")

    handler = object.__new__(server.handler(app=None))
    handler.wfile, handler.path, handler.command = Gone(), "/api/keyframe/x.png", "GET"
    handler.request_version, handler.requestline = "HTTP/1.1", "GET / HTTP/1.1"
    handler.client_address = ("127.0.0.1", 0)
    with caplog.at_level("DEBUG", logger="stance.demo.server"):
        handler._run(lambda: ("image/png", b"png"))
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert any("closed" in r.getMessage() for r in caplog.records)
