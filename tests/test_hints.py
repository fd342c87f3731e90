"""User hints -> cue stores: parser, rasteriser (property-based) and clear errors."""

import json

import numpy as np
import pytest
import yaml
from helpers import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from stance.cues import hints, mass, store
from stance.settings import Mass

MASS = Mass(normalization="log", reference_kg=1.0)
masks = arrays(np.bool_, st.tuples(st.integers(1, 12), st.integers(1, 12)))


@given(masks)
def test_rle_round_trip(mask):
    assert np.array_equal(hints.rle_decode(hints.rle_encode(mask)), mask)


def test_rle_is_column_major_coco():
    mask = np.array([[0, 1], [0, 1]], bool)  # right column set
    assert hints.rle_encode(mask) == {"size": [2, 2], "counts": [2, 2]}


finite = st.floats(-20, 20, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(finite, finite, finite, st.floats(0.01, 50)), min_size=1, max_size=4),
    st.integers(0, 2**31),
)
def test_rasterised_values_sit_inside_their_masks(values, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(values) + 1, (10, 10))
    instances = [
        hints.Instance(labels == k + 1, (u, v), m, d) for k, (u, v, d, m) in enumerate(values)
    ]
    instances = [i for i in instances if i.mask.any()]
    if not instances:
        return
    cue = hints.rasterise(np.zeros((10, 10, 3), np.uint8), instances, MASS, {"clip_id": "x"})
    store.validate(cue)
    for k, inst in enumerate(instances):
        inside = cue.cue[0][cue.labels == k + 1]
        expected = [
            inst.arrow[0],
            inst.arrow[1],
            inst.dz,
            mass.normalise(np.array([inst.mass_kg]), MASS)[0],
        ]
        assert np.allclose(inside, np.float32(expected))
    assert not cue.cue[0][cue.labels == 0].any()


@given(st.floats(0, 360), st.floats(0, 10))
def test_direction_and_speed_equal_the_vector_form(angle, speed):
    dx, dy = hints.parse_arrow({"direction_deg": angle, "speed": speed}, "i")
    assert np.hypot(dx, dy) == pytest.approx(speed, abs=1e-9)


@pytest.mark.parametrize(
    ("arrow", "message"),
    [
        ([1.0], "arrow must be"),
        (["a", 1], "must be a number"),
        ([float("nan"), 0], "finite"),
        ({"direction_deg": 0}, "exactly direction_deg and speed"),
        ({"direction_deg": 0, "speed": -1}, "positive speed"),
    ],
)
def test_bad_arrows(arrow, message):
    with pytest.raises(hints.HintError, match=message):
        hints.parse_arrow(arrow, "instance 0")


@pytest.mark.parametrize(
    "rle",
    [{"size": [2, 2], "counts": [1, 2]}, {"counts": [4]}, {"size": [2, 2], "counts": [5, -1]}],
)
def test_bad_rle(rle):
    with pytest.raises(hints.HintError, match="RLE"):
        hints.rle_decode(rle)


@pytest.fixture
def hint_dir(tmp_path):
    Image.fromarray(np.full((16, 20, 3), 90, np.uint8)).save(tmp_path / "key.png")
    ball = np.zeros((16, 20), np.uint8)
    ball[4:8, 4:8] = 255
    Image.fromarray(ball).save(tmp_path / "ball.png")
    box = np.zeros((16, 20), bool)
    box[10:14, 12:18] = True
    spec = {
        "keyframe": "key.png",
        "instances": [
            {"mask": "ball.png", "arrow": [2.0, -1.0], "mass": 2.0, "dz": 0.05},
            {
                "mask": {"rle": hints.rle_encode(box)},
                "arrow": {"direction_deg": 180, "speed": 1.5},
                "mass": 0.5,
            },
        ],
    }
    return tmp_path, spec


def _write(folder, spec, name="hints.yaml"):
    path = folder / name
    path.write_text(json.dumps(spec) if name.endswith(".json") else yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("name", ["hints.yaml", "hints.json"])
def test_hint_file_becomes_a_cue(hint_dir, name):
    folder, spec = hint_dir
    cue = hints.load(_write(folder, spec, name), MASS)
    ball = cue.cue[0][5, 5]
    assert np.allclose(ball, [2.0, -1.0, 0.05, np.log(2.0)])
    box = cue.cue[0][12, 14]
    assert np.allclose(box, [-1.5, 0.0, 0.0, np.log(0.5)], atol=1e-6)
    assert cue.instances["area_px"].tolist() == [16, 24]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["instances"][0].update(mass=-1), "mass is -1.0 kg"),
        (lambda s: s["instances"][0].update(mass=float("nan")), "finite"),
        (lambda s: s["instances"][0].update(dz="up"), "dz must be a number"),
        (lambda s: s["instances"][0].update(colour="red"), "unknown \\['colour'\\]"),
        (lambda s: s["instances"][0].pop("arrow"), "missing \\['arrow'\\]"),
        (
            lambda s: s["instances"][1]["mask"]["rle"].update(size=[8, 10], counts=[80]),
            "mask is 8x10 but the keyframe is 16x20",
        ),
        (lambda s: s["instances"][1]["mask"]["rle"].update(counts=[320]), "empty mask"),
        (lambda s: s["instances"].append(dict(s["instances"][0])), "overlap"),
        (lambda s: s.update(keyframe="missing.png"), "does not exist"),
        (lambda s: s.update(instances=[]), "non-empty list"),
    ],
)
def test_bad_hints_get_clear_errors(hint_dir, change, message):
    folder, spec = hint_dir
    change(spec)
    with pytest.raises(hints.HintError, match=message):
        hints.load(_write(folder, spec), MASS)


def test_cli_from_hints_writes_store_and_picture(hint_dir, tmp_path):
    folder, spec = hint_dir
    out = tmp_path / "out" / "demo.zarr"
    run_cli("cues", "from-hints", str(_write(folder, spec)), "--out", str(out))
    cue = store.read(out)
    assert cue.attrs["source"] == "hints" and out.with_suffix(".png").exists()
    # in a downloaded bundle's folder (no config.yaml): the schema's defaults, said so
    here = run_cli("cues", "from-hints", str(_write(folder, spec)), "--out", "b.zarr", cwd=folder)
    assert "schema's defaults" in here.stderr
    assert np.array_equal(store.read(folder / "b.zarr").cue, cue.cue)  # same mass settings
    bad = folder / "bad.yaml"
    bad.write_text("keyframe: [unclosed")
    result = run_cli("cues", "from-hints", str(bad), "--out", str(out), check=False)
    assert result.returncode == 2 and "not valid YAML" in result.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["instances"][0].update(arrow=[1e12, 0]), "longer than the keyframe"),
        (lambda s: s["instances"][0].update(arrow=[21, 0]), "21 px/frame, longer"),
        (lambda s: s["instances"][0].update(dz=1e9), "expected \\|dz\\| <= 10"),
        (lambda s: s["instances"][0].update(mass=True), "must be a number"),
        (lambda s: s["instances"][0].update(mass=10**400), "must be a number"),
        (lambda s: s.update(keyframe="hints.yaml"), "not an image PIL can read"),
        (lambda s: s.update(keyframe="."), "is not a regular file"),
        (lambda s: s.update(keyframe="/dev/zero"), "is not a regular file"),
        (lambda s: s.update(keyframe="../../../../../../../etc/passwd"), "not an image"),
        (lambda s: s.update(keyframe=["key.png"]), "must be a file path"),
        (lambda s: s["instances"][0].update(mask="../../../../../../../etc/hostname"), "mask"),
        (lambda s: s.update(depth="hints.yaml"), "depth file .* not an image"),
        (lambda s: s.update(instances=[s["instances"][0]] * 300), "at most 255"),
    ],
)
def test_malformed_and_hostile_hints_get_clear_errors(hint_dir, change, message):
    folder, spec = hint_dir
    change(spec)
    with pytest.raises(hints.HintError, match=message):
        hints.load(_write(folder, spec), MASS)


def test_a_path_may_leave_the_hint_folder_only_to_a_real_image(hint_dir, tmp_path_factory):
    folder, spec = hint_dir
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    Image.open(folder / "key.png").save(elsewhere / "key.png")
    spec["keyframe"] = str(elsewhere / "key.png")
    assert hints.load(_write(folder, spec), MASS).keyframe.shape == (16, 20, 3)
    (elsewhere / "notes.txt").write_text("secret")
    spec["keyframe"] = "../" + elsewhere.name + "/notes.txt"
    with pytest.raises(hints.HintError, match="not an image"):
        hints.load(_write(folder, spec), MASS)


def test_huge_images_are_refused_before_decoding(hint_dir, monkeypatch):
    folder, spec = hint_dir
    monkeypatch.setattr(hints, "MAX_PIXELS", 16 * 20 - 1)
    with pytest.raises(hints.HintError, match=r"16 \(0.0 MP\)|20x16 .* above the limit"):
        hints.load(_write(folder, spec), MASS)


def test_truncated_images_and_npy_files_are_clear_errors(hint_dir):
    folder, spec = hint_dir
    data = (folder / "key.png").read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    spec["keyframe"] = "cut.png"
    with pytest.raises(hints.HintError, match=r"truncated or corrupt|not an image"):
        hints.load(_write(folder, spec), MASS)
    spec["keyframe"] = "key.png"
    (folder / "d.npy").write_bytes(b"\x93NUMPY garbage")
    spec["depth"] = "d.npy"
    with pytest.raises(hints.HintError, match=r"not a readable \.npy"):
        hints.load(_write(folder, spec), MASS)
    np.save(folder / "d.npy", np.zeros((3, 3), np.float32))
    with pytest.raises(hints.HintError, match="16x20 array"):
        hints.load(_write(folder, spec), MASS)


def test_cli_reports_hostile_hints_without_traceback(hint_dir, tmp_path):
    folder, spec = hint_dir
    spec["instances"][0]["arrow"] = [1e12, 0]
    out = tmp_path / "o.zarr"
    result = run_cli(
        "cues", "from-hints", str(_write(folder, spec)), "--out", str(out), check=False
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "instance 0: arrow" in result.stderr and not out.exists()


# -- property-based: any document ends in a valid store or a UserError ------------------
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
values = st.recursive(
    scalars | st.sampled_from(["key.png", "ball.png", "../key.png", "hints.yaml", "/dev/null"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["mask", "arrow", "mass", "dz", "rle", "size", "counts", "speed", "direction_deg"]
            )
            | st.text(max_size=6),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)
instance = st.fixed_dictionaries(
    {},
    optional={
        "mask": st.sampled_from(["ball.png", "key.png"]) | values,
        "arrow": st.tuples(st.floats(), st.floats()).map(list) | values,
        "mass": st.floats() | values,
        "dz": st.floats() | values,
    },
)
documents = (
    st.fixed_dictionaries(
        {},
        optional={
            "keyframe": st.sampled_from(["key.png", "ball.png"]) | values,
            "instances": st.lists(instance, max_size=3) | values,
            "depth": values,
        },
    )
    | values
)


small = st.floats(-2, 2, allow_nan=False)
valid_instance = st.fixed_dictionaries(
    {"arrow": st.tuples(small, small).map(list), "mass": st.floats(0.01, 50)},
    optional={"dz": st.floats(-0.5, 0.5)},
)
valid_documents = st.fixed_dictionaries(
    {
        "keyframe": st.just("key.png"),
        "instances": st.lists(valid_instance, min_size=1, max_size=3).map(
            lambda items: [{"mask": f"ball{k}.png", **item} for k, item in enumerate(items)]
        ),
    }
)
# a quarter of the drawn documents are valid (they must give a store), the rest anything
drawn = st.integers(0, 3).flatmap(
    lambda k: (
        valid_documents.map(lambda d: (True, d)) if k == 0 else documents.map(lambda d: (False, d))
    )
)


@settings(max_examples=150, deadline=None)
@given(drawn)
def test_any_hint_document_is_a_store_or_a_user_error(tmp_path_factory, drawn):
    from stance.errors import UserError

    valid, document = drawn

    folder = tmp_path_factory.mktemp("fuzz")
    Image.fromarray(np.full((16, 20, 3), 90, np.uint8)).save(folder / "key.png")
    ball = np.zeros((16, 20), np.uint8)
    ball[4:8, 4:8] = 255
    Image.fromarray(ball).save(folder / "ball.png")
    for k in range(3):  # three disjoint masks for the valid documents
        disk = np.zeros((16, 20), np.uint8)
        disk[10:14, 2 + 6 * k : 6 + 6 * k] = 255
        Image.fromarray(disk).save(folder / f"ball{k}.png")
    path = folder / "hints.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        cue = hints.load(path, MASS)
    except UserError:
        assert not valid, document
        return
    store.read(store.write(folder / "cue.zarr", cue))
