"""The cue editor demo: its logic on synthetic keyframes, and the real page driven by a
headless Chromium (Selenium): upload, click, drag an arrow (also past the canvas), remove,
undo and clear, set the generation settings, generate, watch, download the hints."""

import dataclasses
import io
import json
import shutil
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import clip_arrays
from PIL import Image

from stance import cli, config, video
from stance.cues import hints
from stance.cues import store as cue_store
from stance.demo import model as demo_model
from stance.demo import server
from stance.demo import session as demo
from stance.depth import model as depth_model
from stance.render import store as clip_store
from stance.train import tiny, weights

MASS = config.defaults().cues.mass
REPO = Path(__file__).parents[1]
RED, BLUE = (slice(20, 32), slice(10, 22)), (slice(40, 50), slice(40, 52))  # rows, columns
TRUE_ARROWS = [(1.5, -0.5), (0.0, 0.0)]  # the example clip's cues: red moves, blue rests


def keyframe(size=64):
    image = np.full((size, size, 3), 120, np.uint8)
    image[RED] = (220, 40, 40)  # a red square: the object
    image[BLUE] = (40, 60, 220)
    return image


def png_bytes(image, format="PNG") -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format=format)
    return out.getvalue()


def make_trained(root: Path, name: str = "rgb_only", identity: dict | None = None) -> Path:
    """A tiny stack and a 'trained' variant (rgb_only unless named) with random weights,
    as training leaves it (transformer/ + train.resolved.json)."""
    model_dir = root / "results" / "models" / "tiny-cogvideox-i2v"
    if not model_dir.exists():
        tiny.make_tiny(model_dir)
    trained = root / "results" / "train" / name
    identity = identity or {"aux": "none", "cue_mode": "dense_rope", "motion_tokens": 8}
    weights.stance_transformer(str(model_dir), identity, False).save_pretrained(
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


def write_example(results: Path) -> Path:
    """A test clip's render store (keyframe(): red = instance 1, blue = 2) and the cue
    store the cue stage would write beside it, with TRUE_ARROWS and a keyframe disparity."""
    name = "test-02000000.zarr"
    rgb = np.stack([keyframe()] * 2)
    seg = np.zeros((2, 64, 64), np.uint16)
    seg[(slice(None), *RED)], seg[(slice(None), *BLUE)] = 1, 2
    tracks = {n: np.zeros((2, 2, *tail), d) for n, (d, tail) in clip_store.TRACKS.items()}
    attrs = {"clip_id": name.removesuffix(".zarr"), "instances": [{"mass": 2.0}, {"mass": 0.5}]}
    path = clip_store.write_clip(
        results / "render/test/00000" / name, clip_arrays(rgb, seg), tracks, attrs
    )
    masses, dz = [2.0, 0.5], [0.05, 0.0]
    instances = [
        hints.Instance(seg[0] == k + 1, TRUE_ARROWS[k], masses[k], dz[k]) for k in range(2)
    ]
    disparity = np.tile(np.linspace(1, 2, 64, dtype=np.float32)[:, None], (1, 64))
    cue = hints.rasterise(rgb[0], instances, MASS, {"clip_id": attrs["clip_id"]}, disparity)
    cue_store.write(results / "cues/test/00000" / name, cue)
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Path:
    """A results folder as the tiny default DAG leaves it: the tiny video and depth models
    (random weights), an RGB+Depth and an RGB-only variant, one example test clip with its
    cue store; config.yaml and configs/small.yaml beside it."""
    root = tmp_path_factory.mktemp("demo")
    shutil.copy(REPO / "config.yaml", root / "config.yaml")
    (root / "configs").mkdir()
    shutil.copy(REPO / "configs" / "small.yaml", root / "configs" / "small.yaml")
    depth_model.make_tiny(root / config.TINY_MODELS["depth"])
    make_trained(root, "rgb_depth", {"aux": "depth", "cue_mode": "dense_rope", "motion_tokens": 8})
    make_trained(root)
    write_example(root / "results")
    return root


@pytest.fixture
def at_stack(stack, monkeypatch) -> Path:
    monkeypatch.chdir(stack)  # config.yaml and models.* are relative to the working folder
    return stack


def model_of(variant: str) -> demo_model.Model:
    return demo_model.find_model(Path("results"), Path("results/train") / variant)


# -- clicks and drags ------------------------------------------------------------------
def test_a_click_selects_the_object_under_it_by_flood_fill():
    sess = demo.Session(keyframe=keyframe())
    mask = demo.mask_at(sess, 15, 25)
    assert mask.sum() == 144 and mask[RED].all()
    assert demo.select(sess, 15, 25) == 0 and demo.select(sess, 12, 30) == 0  # same object
    assert demo.select(sess, 45, 45) == 1
    with pytest.raises(demo.DemoError, match=r"covers 94% of the image \(more than 50%\)") as err:
        demo.mask_at(sess, 2, 2)
    assert "looks like the background: click inside an object" in str(err.value)
    with pytest.raises(demo.DemoError, match="outside the 64x64 image"):
        demo.select(sess, 70, 5)


def test_regions_along_the_border_or_over_half_the_image_are_refused():
    assert (demo.MAX_REGION_SHARE, demo.MAX_BORDER_SHARE) == (0.5, 0.5)
    framed = np.full((64, 64, 3), 120, np.uint8)
    framed[:3], framed[-3:], framed[:, :3], framed[:, -3:] = 0, 0, 0, 0  # a dark frame: 18 %
    sess = demo.Session(keyframe=framed)
    with pytest.raises(demo.DemoError, match="runs along 100% of the image border"):
        demo.mask_at(sess, 1, 30)
    big = np.full((64, 64, 3), 120, np.uint8)
    big[4:60, 4:60] = (200, 200, 0)  # 77 % of the image, off the border
    with pytest.raises(demo.DemoError, match="covers 77% of the image"):
        demo.mask_at(demo.Session(keyframe=big), 30, 30)
    # an object cut by one edge is still an object
    edge = keyframe()
    edge[0:12, 30:40] = (0, 200, 0)
    assert demo.mask_at(demo.Session(keyframe=edge), 35, 5).sum() == 120


def test_example_keyframes_select_rendered_instances():
    labels = np.zeros((64, 64), np.uint16)
    labels[5:9, 5:9] = 2
    sess = demo.Session(keyframe=keyframe(), labels=labels)
    assert demo.mask_at(sess, 6, 6).sum() == 16
    with pytest.raises(demo.DemoError, match="floor or background"):
        demo.mask_at(sess, 30, 30)


def test_a_drag_is_the_displacement_over_the_clip():
    sess = demo.Session(keyframe=keyframe())
    assert demo.draw_arrow(sess, (15, 25), (31, 17), frames=9) == 0  # selects and sets
    assert sess.instances[0].arrow == (2.0, -1.0) and len(sess.history) == 1
    assert demo.set_arrow(sess, 0, (15, 25), (23, 25), frames=9) == (1.0, 0.0)
    with pytest.raises(demo.DemoError, match="outside"):
        demo.draw_arrow(sess, (15, 25), (90, 25), frames=9)
    with pytest.raises(demo.DemoError, match="looks like the background"):
        demo.draw_arrow(sess, (2, 2), (20, 2), frames=9)
    assert len(sess.instances) == 1 and len(sess.history) == 2  # refused drags change nothing
    with pytest.raises(demo.DemoError, match="does not exist"):
        demo.set_physics(sess, 3, 1.0, 0.0)
    with pytest.raises(demo.DemoError, match="positive"):
        demo.set_physics(sess, 0, 0.0, 0.0)


def test_objects_can_be_removed_undone_and_cleared():
    sess = demo.Session(keyframe=keyframe())
    with pytest.raises(demo.DemoError, match="nothing to undo"):
        demo.undo(sess)
    with pytest.raises(demo.DemoError, match="nothing to clear"):
        demo.clear(sess)
    demo.draw_arrow(sess, (15, 25), (31, 17), frames=9)  # 1 change: red with its arrow
    demo.select(sess, 45, 45)  # 2: blue
    demo.select(sess, 45, 45)  # already there: no change
    demo.set_physics(sess, 1, 2.0, 0.1)  # 3
    demo.remove(sess, 0)  # 4
    assert [i.mass_kg for i in sess.instances] == [2.0]
    demo.undo(sess)
    assert [i.arrow for i in sess.instances] == [(2.0, -1.0), (0.0, 0.0)]
    demo.clear(sess)
    assert sess.instances == []
    demo.undo(sess)
    demo.undo(sess)  # before the physics
    assert [(i.mass_kg, i.dz) for i in sess.instances] == [(1.0, 0.0), (1.0, 0.0)]
    demo.undo(sess)
    demo.undo(sess)
    assert sess.instances == [] and not sess.history
    with pytest.raises(demo.DemoError, match="no object selected"):
        demo.remove(sess, 0)


# -- uploads ---------------------------------------------------------------------------
def wide_image() -> np.ndarray:
    """128x64 with a red disc of radius 10: round in any fit that keeps proportions."""
    image = np.full((64, 128, 3), 120, np.uint8)
    ys, xs = np.mgrid[:64, :128]
    image[(xs - 64) ** 2 + (ys - 32) ** 2 <= 100] = (220, 40, 40)
    return image


def disc_extent(keyframe_: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero((keyframe_[..., 0] > 170) & (keyframe_[..., 1] < 90))
    return xs.max() - xs.min() + 1, ys.max() - ys.min() + 1


def test_uploads_keep_their_proportions_padded_or_cropped():
    padded = demo.from_upload(png_bytes(wide_image()), 64, "pad")
    assert padded.keyframe.shape == (64, 64, 3)
    assert "128x64 scaled to fit and padded with its edge colour to 64x64" in padded.note
    width, height = disc_extent(padded.keyframe)
    assert abs(width - height) <= 1  # a disc, not an ellipse
    assert (padded.keyframe[0] == 120).all() and (padded.keyframe[-1] == 120).all()
    cropped = demo.from_upload(png_bytes(wide_image()), 64, "crop")
    assert "scaled to fill and centre-cropped" in cropped.note
    width, height = disc_extent(cropped.keyframe)
    assert abs(width - height) <= 1 and width > disc_extent(padded.keyframe)[0]
    resized = demo.from_upload(png_bytes(keyframe(100)), 48)
    assert resized.keyframe.shape == (48, 48, 3) and "resized from 100x100 to 48x48" in resized.note
    assert demo.from_upload(png_bytes(keyframe(48)), 48).note == ""
    with pytest.raises(demo.DemoError, match="fit 'stretch': expected one of pad, crop"):
        demo.from_upload(png_bytes(wide_image()), 32, "stretch")


def test_phone_photos_and_transparent_images_upload():
    rgb = keyframe()
    photo = io.BytesIO()  # a JPEG with an embedded preview image, as phone cameras save
    Image.fromarray(rgb).save(
        photo, format="MPO", save_all=True, append_images=[Image.fromarray(rgb)]
    )
    assert Image.open(photo).format == "MPO"
    assert demo.from_upload(photo.getvalue(), 64).keyframe.shape == (64, 64, 3)
    rgba = np.zeros((64, 64, 4), np.uint8)  # transparent black ...
    rgba[RED] = (220, 40, 40, 255)  # ... around an opaque red square
    sess = demo.from_upload(png_bytes(rgba), 64)
    assert (sess.keyframe[0, 0] == demo.TRANSPARENT_BACKGROUND).all()
    assert (sess.keyframe[RED] == (220, 40, 40)).all()


def test_bad_uploads_say_what_was_expected():
    for data in (b"not a png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40):
        with pytest.raises(demo.DemoError) as err:
            demo.from_upload(data, 48)
        message = str(err.value)
        assert "not an image: choose a PNG, JPEG, WebP, BMP or TIFF file" in message
        assert "BytesIO" not in message and "0x" not in message
    gif = png_bytes(keyframe(), format="GIF")
    with pytest.raises(demo.DemoError, match="is a GIF file: choose a PNG, JPEG"):
        demo.from_upload(gif, 48)
    truncated = png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    with pytest.raises(demo.DemoError, match="PNG file is truncated or corrupt"):
        demo.from_upload(truncated[: len(truncated) // 2], 48)


def test_nothing_selected_is_a_clear_error(at_stack):
    sess = demo.Session(keyframe=keyframe())
    with pytest.raises(demo.DemoError, match="no object selected"):
        demo.cue_clip(sess, MASS)
    with pytest.raises(demo.DemoError, match="nothing to download"):
        demo.hint_bundle(sess, model_of("rgb_only"))


# -- depth, hints, generation settings -------------------------------------------------
def test_the_hint_bundle_rebuilds_the_same_cue(at_stack, tmp_path):
    sess = demo.Session(keyframe=keyframe())
    demo.draw_arrow(sess, (15, 25), (23, 25), frames=9)
    demo.set_physics(sess, demo.select(sess, 45, 45), 2.5, -0.1)
    with zipfile.ZipFile(io.BytesIO(demo.hint_bundle(sess, model_of("rgb_only")))) as bundle:
        bundle.extractall(tmp_path)
    rebuilt = hints.load(tmp_path / "hints.yaml", MASS)
    np.testing.assert_array_equal(rebuilt.cue, demo.cue_clip(sess, MASS).cue)
    assert rebuilt.instances["u"].tolist() == [1.0, 0.0]
    assert rebuilt.instances["mass_kg"].tolist() == [1.0, 2.5]
    # the depth goes along for every variant, so the same hints drive a depth stream too
    np.testing.assert_array_equal(rebuilt.keyframe_disparity, sess.disparity)
    assert "stance cues from-hints hints.yaml" in (tmp_path / "README.txt").read_text()


def test_an_upload_generates_with_a_depth_stream_from_estimated_depth(at_stack, tmp_path):
    """No keyframe depth is given for an upload: the configured Depth-Anything-V2 estimates
    it as the depth stage does, and the bundle carries it to the command line."""
    model = model_of("rgb_depth")
    assert model.needs_disparity and model.streams == ["RGB", "depth"]
    sess = demo.from_upload(png_bytes(keyframe()), model.size)
    demo.draw_arrow(sess, (15, 25), (31, 17), model.frames)
    assert sess.disparity is None
    with zipfile.ZipFile(io.BytesIO(demo.hint_bundle(sess, model))) as bundle:
        assert sorted(bundle.namelist()) == [
            "README.txt",
            "depth.npy",
            "hints.yaml",
            "keyframe.png",
        ]
        bundle.extractall(tmp_path)
    net, processor = depth_model.load(model.cfg.models.depth)
    device, dtype = depth_model.resolve_device(model.cfg.depth.device, model.cfg.depth.dtype)
    size = model.cfg.depth.input_size
    expected = depth_model.predict(net, processor, sess.keyframe[None], size, 1, device, dtype)
    np.testing.assert_array_equal(sess.disparity, expected[0])
    assert "tiny, random weights" in sess.disparity_source
    assert "depth.npy" in (tmp_path / "README.txt").read_text()
    # the user's commands: stance cues from-hints, then stance generate hints
    store, out = tmp_path / "demo.zarr", tmp_path / "demo.mp4"
    assert cli.main(["cues", "from-hints", str(tmp_path / "hints.yaml"), "--out", str(store)]) == 0
    argv = ["generate", "hints", str(store), "--trained", str(model.trained), "--out", str(out)]
    assert cli.main(argv) == 0
    assert len(video.read_video(out)) == model.frames
    assert len(video.read_video(out.with_suffix(".aux.mp4"))) == model.frames


def test_generation_settings_default_to_the_config_and_are_checked():
    defaults = demo.Generation("objects moving on the floor.", 0, 4, 1.0)
    assert demo.generation_settings({}, defaults) == defaults
    chosen = {"prompt": " a red cube. ", "seed": "7", "steps": 12, "guidance_scale": "6.5"}
    assert demo.generation_settings(chosen, defaults) == demo.Generation("a red cube.", 7, 12, 6.5)
    bad = {
        "prompt": ("   ", "the prompt is empty"),
        "steps": ("0", "sampling steps 0: expected a whole number from 1 to 1000"),
        "seed": ("1.5", "the seed 1.5: expected a whole number"),
        "guidance_scale": ("lots", "the guidance scale 'lots': expected a number from 0 to 50"),
    }
    for key, (value, message) in bad.items():
        with pytest.raises(demo.DemoError, match=message):
            demo.generation_settings({key: value}, defaults)
    with pytest.raises(demo.DemoError, match="sampling steps is empty"):
        demo.generation_settings({"steps": ""}, defaults)


def test_an_example_opens_with_its_true_motion(at_stack):
    example = demo.examples(Path("results"))[0]
    sess = demo.from_example(example, 64)
    assert sess.truth is not None and "cue store" in sess.disparity_source
    assert demo.fill_true_motion(sess) == 2
    assert [i.arrow for i in sess.instances] == TRUE_ARROWS
    assert [i.mass_kg for i in sess.instances] == [2.0, 0.5]
    stored = cue_store.read(demo.example_cue_path(example))
    np.testing.assert_allclose(demo.cue_clip(sess, MASS).cue, stored.cue, atol=1e-6)
    demo.undo(sess)
    assert sess.instances == []
    with pytest.raises(demo.DemoError, match="no true motion for this keyframe"):
        demo.fill_true_motion(demo.Session(keyframe=keyframe()))


def test_the_frame_strip_shows_evenly_spaced_frames_one_row_per_stream():
    assert demo.strip_frames(9) == list(range(9))
    assert demo.strip_frames(49) == [0, 6, 12, 18, 24, 30, 36, 42, 48]
    rgb = np.stack([np.full((4, 6, 3), t, np.uint8) for t in range(49)])
    aux = 200 + rgb // 4
    strip = demo.frame_strip([rgb, aux])
    assert strip.shape == (4 + 2 + 4, 9 * 6 + 8 * 2, 3)
    assert strip[0, 0, 0] == 0 and strip[0, 8 * 8, 0] == 48 and strip[6, 8, 0] == aux[6, 0, 0, 0]
    assert (strip[4:6] == 255).all()  # the gap between the rows


def test_random_weights_are_said_with_the_model_to_use_instead(at_stack):
    model = model_of("rgb_only")
    note = model.weights_note()
    assert model.random_weights and "This model has random weights" in note
    assert "configfile=configs/small.yaml" in note and "its variant rgb_only" in note
    trained = dataclasses.replace(
        model, record={**model.record, "model": config.built_video_model("small"), "steps": 900}
    )
    assert not trained.random_weights and trained.weights_note() == ""


def test_the_best_variant_is_found_and_described(stack, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    with pytest.raises(demo.DemoError, match="no trained cue variant"):
        demo_model.find_model(Path("results"))
    models = tmp_path / "results" / "models"
    models.mkdir(parents=True)
    (models / "tiny-cogvideox-i2v").symlink_to(stack / "results/models/tiny-cogvideox-i2v")
    make_trained(tmp_path)
    model = demo_model.find_model(Path("results"))
    assert model.name == "rgb_only" and model.size == 64
    assert "Dense RoPE, 8 motion tokens" in model.describe()
    assert "trained 0 steps on 0 clips" in model.describe()
    # with the tables written, the demo shows the variant they report as STANCE
    map2d = make_trained(tmp_path, "map2d", {"aux": "none", "cue_mode": "map2d"})
    assert demo_model.find_model(Path("results")).name == "rgb_only"  # Dense RoPE first
    (tmp_path / "results" / "evaluate").mkdir(parents=True)
    published = "paper row,paper Physics IQ (published),our row,our Physics IQ (this run)\n"
    published += "STANCE (Table 1),47.62,map2d,3.0\nSG-I2V,15.42,-,\n"
    (tmp_path / "results" / "evaluate" / "published.csv").write_text(published)
    assert demo_model.find_model(Path("results")).trained.resolve() == map2d.resolve()


# -- the page --------------------------------------------------------------------------
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


@pytest.fixture
def page(at_stack):
    """(driver, wait, app) on the stack's default variant (rgb_depth)."""
    from selenium.webdriver.support.ui import WebDriverWait

    model = demo_model.find_model(Path("results"))
    app = server.App(model, Path("results"))
    httpd = server.serve(app, port=0)
    driver = browser()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        driver.get(url + "/")
        wait = WebDriverWait(driver, 120)
        wait.until(lambda d: d.find_elements("id", "example-0"))
        yield driver, wait, app
    finally:
        driver.quit()
        httpd.shutdown()


def at(x, y):  # image pixel's centre -> offset from the canvas centre (384 px showing 64)
    return (x * 6 + 3 - 192, y * 6 + 3 - 192)


def canvas_rgb(driver, x, y) -> list[int]:
    """The colour the canvas shows at canvas pixel (x, y)."""
    return driver.execute_script(
        "return Array.from(document.getElementById('canvas').getContext('2d')"
        ".getImageData(arguments[0], arguments[1], 1, 1).data.slice(0, 3));",
        x,
        y,
    )


def texts(driver, css):
    """The text of every element matching `css`, read at once (the page redraws lists)."""
    script = "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText);"
    return driver.execute_script(script, css)


@pytest.mark.browser
def test_the_page_draws_cues_generates_and_returns_the_hints(page, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver, wait, app = page
    find = driver.find_element
    model = app.model
    assert "Model: variant rgb_depth" in find(By.ID, "model").text
    weights = find(By.ID, "weights")
    assert weights.is_displayed() and "This model has random weights" in weights.text
    # the result column sits beside the inputs
    canvas, outputs = find(By.ID, "canvas"), find(By.ID, "outputs")
    assert outputs.rect["x"] > canvas.rect["x"] + canvas.rect["width"]
    assert outputs.rect["y"] < canvas.rect["y"] + canvas.rect["height"]

    message, status = find(By.ID, "message"), find(By.ID, "status")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("a shopping list, not a picture")
    find(By.ID, "upload").send_keys(str(not_an_image))
    wait.until(lambda d: "not an image: choose a PNG, JPEG" in message.text)
    assert "BytesIO" not in message.text and message.get_attribute("class") == "error"

    # a wide upload keeps its proportions: the 128x64 image is padded (the default) ...
    image = tmp_path / "upload.png"
    wide = np.full((64, 128, 3), 120, np.uint8)
    wide[8:32, 20:44] = (220, 40, 40)  # -> image px 10..21 x 20..31 after halving + padding
    wide[44:60, 80:104] = (40, 60, 220)  # -> 40..51 x 38..45
    Image.fromarray(wide).save(image)
    find(By.ID, "upload").send_keys(str(image))
    wait.until(lambda d: "padded with its edge colour to 64x64" in message.text)
    # ... or centre-cropped, as chosen, and back
    fit = Select(find(By.ID, "fit"))
    fit.select_by_value("crop")
    wait.until(lambda d: "centre-cropped" in message.text)
    fit.select_by_value("pad")
    wait.until(lambda d: "padded with its edge colour" in message.text)

    ActionChains(driver).move_to_element_with_offset(canvas, *at(2, 2)).click().perform()
    wait.until(lambda d: "looks like the background: click inside an object" in message.text)
    assert "Traceback" not in driver.page_source

    # drag the red square right, the arrow drawn live, released past the canvas's edge
    start = at(15, 25)
    drag = ActionChains(driver).move_to_element_with_offset(canvas, *start).click_and_hold()
    drag.move_by_offset(60, 0).perform()  # 10 image px right: still on the canvas
    wait.until(
        lambda d: "arrow (1.25, 0.00) px/frame to (25,25)" in d.find_element(By.ID, "drag").text
    )
    assert canvas_rgb(driver, 20 * 6, 25 * 6 + 3) == [0, 229, 255]  # the live arrow
    ActionChains(driver).move_by_offset(330, 0).perform()  # 65 image px further: off it
    wait.until(lambda d: "clipped to the image edge" in d.find_element(By.ID, "drag").text)
    ActionChains(driver).release().perform()
    wait.until(lambda d: "arrow (6.00, 0.00)" in d.find_element(By.ID, "selected").text)
    assert "outside the image: it now ends at its edge, (63,25)" in message.text

    # a second object; remove it, undo that, clear everything, undo that
    ActionChains(driver).move_to_element_with_offset(canvas, *at(45, 44)).click().perform()
    wait.until(lambda d: len(texts(d, "#objects li")) == 2)
    find(By.ID, "remove-1").click()
    wait.until(lambda d: len(texts(d, "#objects li")) == 1)
    find(By.ID, "undo").click()
    wait.until(lambda d: len(texts(d, "#objects li")) == 2)
    find(By.ID, "clear").click()
    wait.until(lambda d: len(texts(d, "#objects li")) == 0)
    find(By.ID, "undo").click()
    wait.until(lambda d: len(texts(d, "#objects li")) == 2)
    assert "arrow (6.00, 0.00)" in texts(driver, "#objects li")[0]

    find(By.ID, "object-0").click()
    driver.execute_script(
        "const s = document.getElementById('mass'); s.value = Math.log(3.0);"
        "s.dispatchEvent(new Event('change'));"
    )
    wait.until(lambda d: "3.00" in d.find_element(By.ID, "mass-value").text)

    # generation settings: the config's defaults, checked by the server
    assert find(By.ID, "prompt").get_attribute("value") == server.PROMPT
    assert find(By.ID, "steps").get_attribute("value") == str(model.cfg.generate.steps)
    steps = find(By.ID, "steps")
    steps.clear()
    steps.send_keys("0")
    find(By.ID, "generate").click()
    wait.until(lambda d: "sampling steps 0: expected a whole number from 1 to 1000" in status.text)
    steps.clear()
    steps.send_keys("2")
    find(By.ID, "seed").clear()
    find(By.ID, "seed").send_keys("5")
    find(By.ID, "prompt").clear()
    find(By.ID, "prompt").send_keys("a red cube slides right.")
    find(By.ID, "generate").click()
    result = find(By.ID, "result")
    wait.until(
        lambda d: "done: RGB | depth" in status.text or "error" in status.get_attribute("class")
    )
    assert status.get_attribute("class") != "error", status.text
    assert "keyframe depth estimated by" in status.text

    # the result: streams labelled, looping, slower on request, and its frames in a strip
    assert texts(driver, "#captions span") == ["RGB", "depth"]
    assert result.get_attribute("loop") and not result.get_attribute("controls")
    Select(find(By.ID, "speed")).select_by_value("0.25")
    assert driver.execute_script("return arguments[0].playbackRate", result) == 0.25
    strip = find(By.ID, "strip")
    wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", strip) > 0)
    size = driver.execute_script(
        "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", strip
    )
    assert size == [9 * 64 + 8 * 2, 2 * 64 + 2]
    assert "frames 0, 1, 2, 3, 4, 5, 6, 7, 8" in find(By.ID, "strip-caption").text
    sess = app.sessions[driver.execute_script("return state.session")]
    assert sess.generation == demo.Generation("a red cube slides right.", 5, 2, 1.0)

    video_url = result.get_attribute("src")
    hints_url = find(By.ID, "download").get_attribute("href")
    (tmp_path / "out.mp4").write_bytes(urllib.request.urlopen(video_url).read())
    bundle = urllib.request.urlopen(hints_url).read()

    # on a narrow screen the result wraps below the inputs
    driver.set_window_size(700, 1200)
    wait.until(lambda d: outputs.rect["y"] > canvas.rect["y"] + canvas.rect["height"])

    frames = video.read_video(tmp_path / "out.mp4")
    assert frames.shape[0] == model.frames and frames.shape[2] == 2 * frames.shape[1]
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        archive.extractall(tmp_path / "hints")
    cue = hints.load(tmp_path / "hints" / "hints.yaml", MASS)
    assert cue.instances["u"].tolist() == [6.0, 0.0] and cue.instances["v"].tolist() == [0.0, 0.0]
    assert cue.instances["mass_kg"].tolist() == pytest.approx([3.0, 1.0], abs=0.01)
    assert (cue.labels == 1).sum() == 144  # the red square: 12 x 12 px
    np.testing.assert_array_equal(cue.keyframe_disparity, sess.disparity)
    assert "--prompt 'a red cube slides right.'" in (tmp_path / "hints" / "README.txt").read_text()


@pytest.mark.browser
def test_an_example_opens_with_its_true_motion_drawn(page):
    from selenium.webdriver.common.by import By

    driver, wait, _app = page
    driver.find_element(By.ID, "example-0").click()
    wait.until(lambda d: d.execute_script("return state && state.session"))
    assert texts(driver, "#objects li") == []
    assert driver.find_element(By.ID, "true-motion-box").is_displayed()
    driver.find_element(By.ID, "true-motion").click()
    driver.find_element(By.ID, "example-0").click()
    wait.until(lambda d: len(texts(d, "#objects li")) == 2)
    listed = texts(driver, "#objects li")
    assert "arrow (1.50, -0.50) px/frame, 2.00 kg" in listed[0]
    assert "arrow (0.00, 0.00) px/frame, 0.50 kg" in listed[1]
    # the red square's arrow: from its centre (16, 26) to (16, 26) + 8 x (1.5, -0.5), drawn
    # at 6 canvas px per image px; halfway along it the canvas is white, not the grey floor
    wait.until(lambda d: min(canvas_rgb(d, (16 + 6) * 6, (26 - 2) * 6)) > 230)


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
