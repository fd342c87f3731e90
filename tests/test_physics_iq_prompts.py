"""Physics-IQ prompts: data.yaml -> the reference's descriptions CSV (base templater, byte
for byte against the shipped file), the CogVideoX templater and its token limit, and the
refusals of a broken data.yaml."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
import yaml

from stance import cli
from stance.evaluate import physics_iq_prompts as prompts

DATA = Path(__file__).parent / "data" / "physics_iq_descriptions"
EXCERPT = DATA / "data_excerpt.yaml"
SHIPPED_BASE = DATA / "descriptions_base_excerpt.csv"
POSTFIX_SCENE = "block-domino"  # spells its postfix `subject-action post-fix`


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def scene_entry(**fields) -> dict:
    entry = {
        "scene": "ball-falls",
        "category": "Solid Mechanics",
        "subject-action": "The ball falls.",
        "takes": [{"take": 1, "left": 1, "center": 2, "right": 3}],
    }
    entry.update(fields)
    return {key: value for key, value in entry.items() if value is not None}


def write_data(tmp_path: Path, *entries: dict) -> Path:
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump({"scenes": list(entries)}, sort_keys=False))
    return path


# --- the base templater against the reference's shipped CSV ----------------------------


def test_base_without_postfix_writes_the_shipped_csv_byte_for_byte(tmp_path):
    out = tmp_path / "descriptions_base.csv"
    prompts.write_prompts(EXCERPT, "base", out, with_postfix=False)
    assert out.read_bytes() == SHIPPED_BASE.read_bytes()


def test_base_appends_the_postfix_the_shipped_csv_drops(tmp_path):
    out = tmp_path / "descriptions_base.csv"
    prompts.write_prompts(EXCERPT, "base", out)
    ours, shipped = read_rows(out), read_rows(SHIPPED_BASE)
    assert [r["scenario"] for r in ours] == [r["scenario"] for r in shipped]
    for mine, theirs in zip(ours, shipped, strict=True):
        if POSTFIX_SCENE in mine["scenario"]:
            assert mine["description"] == theirs["description"] + " Then the rotation stops."
        else:
            assert mine == theirs


def test_rows_cover_every_take_and_view_sorted_by_id_with_the_reference_names(tmp_path):
    # The file order is not the ID order: rows still come out sorted by ID.
    path = write_data(
        tmp_path,
        scene_entry(scene="late", takes=[{"take": 1, "left": 4, "center": 5, "right": 6}]),
        scene_entry(
            scene="early",
            takes=[
                {"take": 2, "left": "0199", "center": 200, "right": 201},
                {"take": 1, "left": 1, "center": 2, "right": 3},
            ],
        ),
    )
    rows = prompts.write_prompts(path, "base", tmp_path / "out.csv")
    assert [row.id for row in rows] == [1, 2, 3, 4, 5, 6, 199, 200, 201]
    first, take2 = rows[0], rows[6]
    assert first.scenario == "0001_perspective-left_take-1_trimmed-early.mp4"
    assert first.generated_video_name == "0001_perspective-left_trimmed-early.mp4"
    assert take2.scenario == "0199_perspective-left_take-2_trimmed-early.mp4"
    assert take2.generated_video_name == "0199_perspective-left_trimmed-early.mp4"
    written = read_rows(tmp_path / "out.csv")
    assert list(written[0]) == list(prompts.COLUMNS)
    assert written[0]["category"] == "Solid Mechanics"


def test_both_postfix_spellings_are_read(tmp_path):
    for key in prompts.POSTFIX_KEYS:
        path = write_data(tmp_path, scene_entry(**{key: "Then it rolls away."}))
        (scene,) = prompts.read_scenes(path)
        assert scene.action(with_postfix=True) == "The ball falls. Then it rolls away."
        assert scene.action(with_postfix=False) == "The ball falls."


# --- refusals of a broken data.yaml ------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"subject-action": None}, "'subject-action'"),
        ({"category": None}, "'category'"),
        ({"takes": None}, "'takes'"),
        ({"scene-description": ["a list"]}, "'scene-description' must be text"),
        ({"takes": [{"left": 1}]}, "`take:` number"),
        ({"takes": [{"take": 1, "top": 1}]}, "unknown view(s) ['top']"),
        ({"takes": [{"take": 1, "left": "first"}]}, "'first' is not a number"),
        ({"takes": [{"take": 1}]}, "lists no view IDs"),
        (
            {"subject-action post-fix": "Then A.", "subject-action-postfix": "Then B."},
            "postfix twice",
        ),
    ],
)
def test_a_missing_or_malformed_field_names_the_file_scene_and_field(tmp_path, fields, expected):
    path = write_data(tmp_path, scene_entry(**fields))
    with pytest.raises(prompts.PromptDataError) as error:
        prompts.read_scenes(path)
    message = str(error.value)
    assert str(path) in message
    assert "'ball-falls' (entry 1)" in message
    assert expected in message


def test_the_same_postfix_under_both_keys_is_accepted(tmp_path):
    both = {key: "Then it stops." for key in prompts.POSTFIX_KEYS}
    (scene,) = prompts.read_scenes(write_data(tmp_path, scene_entry(**both)))
    assert scene.action_postfix == "Then it stops."


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "is not a file"),
        ("scenes: [unclosed", "not valid YAML"),
        ("- just a list\n", "top-level `scenes:` list"),
        ("scenes: []\n", "top-level `scenes:` list"),
        ("scenes:\n- 3\n", "entry 1 is not a mapping"),
        ("scenes:\n- category: X\n", "no `scene` name"),
        ("scenes:\n- scene: has_underscore\n", "may not contain '_'"),
    ],
)
def test_an_unreadable_file_is_refused_with_the_fix(tmp_path, content, expected):
    path = tmp_path / "data.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(prompts.PromptDataError) as error:
        prompts.read_scenes(path)
    assert expected in str(error.value)
    assert str(path) in str(error.value)


def test_an_id_given_twice_is_refused(tmp_path):
    path = write_data(
        tmp_path,
        scene_entry(scene="one"),
        scene_entry(scene="two", takes=[{"take": 1, "left": 7, "center": 3, "right": 8}]),
    )
    with pytest.raises(prompts.PromptDataError, match="ID 0003 is given to both one take 1"):
        prompts.read_scenes(path)


# --- the CogVideoX templater -------------------------------------------------------------


def test_cogvideox_prompts_are_one_detailed_paragraph_within_the_token_limit():
    templater = prompts.templater("cogvideox")
    for scene in prompts.read_scenes(EXCERPT):
        text = templater(scene)
        words = text.split()
        assert "\n" not in text
        assert 50 <= len(words) <= 200, (scene.name, len(words))
        assert prompts.estimate_t5_tokens(text) <= prompts.COGVIDEOX_MAX_TOKENS
        # Content first (what the first frame shows), then the action, then camera.
        opening = scene.scene_description or scene.pre_action or scene.subject_action
        assert text.startswith(opening)
        assert scene.action(with_postfix=True) in text
        assert text.index(scene.subject_action) < text.index(prompts.COGVIDEOX_CAMERA)
        assert scene.category.lower() in text
        assert not text.lower().startswith(("the video", "the image"))


def test_cogvideox_shortens_an_over_long_prompt_least_informative_sentence_first(caplog):
    (scene,) = [s for s in prompts.read_scenes(EXCERPT) if s.name == "paint-on-glass"]
    full = prompts.CogVideoXTemplater()(scene)
    limit = prompts.estimate_t5_tokens(full) - 1
    with caplog.at_level(logging.WARNING, logger=prompts.__name__):
        short = prompts.CogVideoXTemplater(max_tokens=limit)(scene)
    assert prompts.estimate_t5_tokens(short) <= limit
    assert prompts.COGVIDEOX_CAMERA not in short
    assert short.endswith(prompts.COGVIDEOX_CAMERA_SHORT)
    assert scene.subject_action in short and scene.scene_description in short
    assert "paint-on-glass" in caplog.text and "the long camera sentence" in caplog.text


def test_cogvideox_keeps_the_action_to_the_end_and_then_refuses():
    scene = prompts.Scene(
        "rolls", "Optics", (), "The ball rolls.", scene_description="A table. " * 20
    )
    minimal = "The ball rolls. " + prompts.COGVIDEOX_CAMERA_SHORT
    limit = prompts.estimate_t5_tokens(minimal)
    assert prompts.CogVideoXTemplater(max_tokens=limit)(scene) == minimal
    with pytest.raises(prompts.PromptTooLong, match=r"'rolls'.*raise --max-tokens"):
        prompts.CogVideoXTemplater(max_tokens=limit - 1)(scene)


def test_base_warns_but_never_changes_an_over_long_prompt(caplog):
    (scene,) = [s for s in prompts.read_scenes(EXCERPT) if s.name == "cut-paper"]
    with caplog.at_level(logging.WARNING, logger=prompts.__name__):
        text = prompts.templater("base", max_tokens=10)(scene)
    assert text == prompts.base_prompt(scene)
    assert "cut-paper: the base prompt is" in caplog.text


def test_an_unknown_templater_is_refused():
    with pytest.raises(prompts.PromptDataError, match="expected one of"):
        prompts.templater("sora2")


# --- token counting ----------------------------------------------------------------------


def test_the_token_estimate_counts_pieces_and_the_end_of_sequence():
    assert prompts.estimate_t5_tokens("") == 1
    assert prompts.estimate_t5_tokens("a ball") == 3
    assert prompts.estimate_t5_tokens("clockwise.") == 1 + 3 + 1  # 9 letters -> 3, "."
    assert prompts.estimate_t5_tokens("30lb") == 1 + 1 + 1 + 1 + 1  # </s>, marker, 3, 0, lb
    assert prompts.estimate_t5_tokens("blue-black") == 1 + 1 + 1 + 2


def test_exact_counts_come_from_a_local_t5_tokenizer(tmp_path):
    from stance.train import tiny

    tiny.tokenizer().save_pretrained(tmp_path / "pipeline" / "tokenizer")
    count = prompts.t5_token_counter(tmp_path / "pipeline")  # a pipeline folder works
    assert count("") == 1  # </s>
    assert count("a a a") > count("a")
    with pytest.raises(prompts.PromptDataError, match="is not a folder"):
        prompts.t5_token_counter(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(prompts.PromptDataError, match="no loadable tokenizer"):
        prompts.t5_token_counter(tmp_path / "empty")


# --- the command ---------------------------------------------------------------------------


def test_the_command_writes_the_csv_and_reports_errors_without_a_traceback(tmp_path, capsys):
    out = tmp_path / "prompts.csv"
    argv = ["evaluate", "physics-iq-prompts", "--data", str(EXCERPT), "--out", str(out)]
    assert cli.main([*argv, "--templater", "cogvideox"]) == 0
    rows = read_rows(out)
    assert len(rows) == 30 and rows[0]["scenario"].startswith("0001_")
    assert cli.main([*argv, "--templater", "base", "--no-action-postfix"]) == 0
    assert out.read_bytes() == SHIPPED_BASE.read_bytes()

    broken = write_data(tmp_path, scene_entry(**{"subject-action": None}))
    argv = ["evaluate", "physics-iq-prompts", "--data", str(broken), "--out", str(out)]
    assert cli.main([*argv, "--templater", "base"]) == 2
    assert "has no 'subject-action'" in capsys.readouterr().err
    assert cli.main([*argv, "--templater", "base", "--max-tokens", "0"]) == 2
