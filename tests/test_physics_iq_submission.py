"""A generated Physics-IQ run folder against the Verified submission rules: every
violation reported at once, the run's descriptions CSV and the submission card skeleton.
Tiny runs (a few 16x16 videos) stand in for the 198 videos of a real one."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from stance import cli, provenance, video
from stance.evaluate import physics_iq_submission as submission

# The reference card's fields (google-deepmind/physics-IQ-benchmark,
# submission_verified/submission.yaml at commit f0e2def48005cac44080e55c245f703b152da808).
REFERENCE_CARD = {
    "public_info": [
        "organization", "model", "model_version", "input_type", "parameters", "fps",
        "resolution", "bon_sampling", "bon_sampling_method", "bon_sampling_source",
        "prompt_upsampling", "prompt_upsampling_method", "prompt_upsampling_source",
        "descriptions", "templater", "availability", "model_source", "provider", "date",
        "tech_report", "comments", "upsample_cost", "upsample_gpu", "upsample_ngpu",
        "upsample_time", "generation_cost", "generation_gpu", "generation_ngpu",
        "generation_time",
    ],
    "reported_scores": [
        "physiq_mean", "physiq_std", "spatial_iou_mean", "spatial_iou_std",
        "weighted_spatial_iou_mean", "weighted_spatial_iou_std", "spatiotemporal_iou_mean",
        "spatiotemporal_iou_std", "mse_mean", "mse_std",
    ],
    "terms": ["terms_version", "terms_accepted", "accepted_on_behalf_of", "accepted_at"],
    "warranties": [
        "has_rights_to_submit", "no_ip_infringement", "permitted_by_provider_tos",
        "no_personal_data_in_content", "metadata_accurate",
    ],
}  # fmt: skip

VIEWS = 4


def name(i: int) -> str:
    return f"{i:04d}_perspective-left_trimmed-scene{i}.mp4"


def write_video(path: Path, fps: int = 8, frames: int | None = None, size=(16, 16)) -> Path:
    frames = fps * 5 if frames is None else frames
    pixels = np.zeros((frames, size[1], size[0], 3), np.uint8)
    pixels[:, :, : size[0] // 2] = 200  # something to encode
    return video.write_mp4(path, pixels, fps)


def write_run(folder: Path, views: int = VIEWS, **kwargs) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, views + 1):
        write_video(folder / name(i), **kwargs)
    return folder


def write_descriptions(path: Path, names: list[str]) -> Path:
    """A descriptions CSV as the benchmark ships it: take-1 and take-2 rows."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["scenario", "description", "category", "generated_video_name"])
        for generated in [*names, *(f"{i:04d}_perspective-left_x.mp4" for i in (199, 200))]:
            scenario = generated.replace("_trimmed", "_take-1_trimmed")
            writer.writerow([scenario, f"prompt of {generated}, quoted", "Optics", generated])
    return path


def test_a_run_that_follows_the_rules_passes_with_its_facts(tmp_path):
    run = submission.check_run(write_run(tmp_path / "run"), views=VIEWS, expected_fps=8)
    assert [v.name for v in run.videos] == [name(i) for i in range(1, VIEWS + 1)]
    assert run.fps == 8 and run.resolution == "16x16"
    assert all(v.duration == pytest.approx(5.0, abs=1e-3) for v in run.videos)


def test_every_violation_is_reported_at_once_with_the_files_and_the_fix(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    write_video(folder / name(1))
    write_video(folder / name(2), frames=39)  # 4.875 s
    write_video(folder / name(4), fps=16)  # 5 s, other fps
    write_video(folder / name(5), size=(32, 16))  # outside 0001..0004, other size
    write_video(folder / "clip.mp4")  # no ID prefix
    write_video(folder / "0001_again.mp4")  # repeated ID
    (folder / "0003_broken.mp4").write_bytes(b"not a video")
    with pytest.raises(submission.SubmissionError) as error:
        submission.check_run(folder, views=VIEWS)
    message = str(error.value)
    assert message.startswith(f"{folder} does not follow the Physics-IQ Verified")
    for expected in (
        "7 .mp4 files, expected 4",
        "names without a 4-digit ID prefix (`0001_...`): clip.mp4; rename",
        "IDs used by more than one file: 0001",
        "IDs outside 0001..0004: 0005",
        "PyAV cannot read 0003_broken.mp4",
        f"{name(2)} (4.8750 s); write exactly 5 x fps frames",
        f"but {name(4)} (16); write every video at one frame rate",
        f"but {name(5)} (32x16); write every video at one size",
    ):
        assert expected in message, expected
    assert message.count("\n  - ") == 8


def test_a_missing_video_and_a_wrong_frame_rate_are_named(tmp_path):
    folder = write_run(tmp_path / "run", views=3, fps=8)
    with pytest.raises(submission.SubmissionError) as error:
        submission.check_run(folder, views=VIEWS, expected_fps=16)
    message = str(error.value)
    assert "3 .mp4 files, expected 4" in message
    assert "no video for ID 0004; generate them" in message
    assert "the videos are 8 fps, not the 16 fps" in message


def test_the_default_expects_the_benchmarks_198_views(tmp_path):
    folder = write_run(tmp_path / "run", views=2)
    with pytest.raises(submission.SubmissionError, match=r"2 \.mp4 files, expected 198"):
        submission.check_run(folder)
    with pytest.raises(submission.SubmissionError, match="0003, 0004, 0005, 0006, 0007 and 191"):
        submission.check_run(folder)


def test_a_missing_or_empty_folder_is_refused(tmp_path):
    with pytest.raises(submission.SubmissionError, match="is not a folder"):
        submission.check_run(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(submission.SubmissionError, match=r"0 \.mp4 files, expected 4"):
        submission.check_run(tmp_path / "empty", views=VIEWS)


def test_the_runs_descriptions_are_its_rows_and_every_video_needs_one(tmp_path):
    folder = write_run(tmp_path / "stance-bpp-run_01")
    source = write_descriptions(tmp_path / "all.csv", [name(i) for i in range(1, VIEWS + 1)])
    run, written = submission.check_and_write(folder, views=VIEWS, descriptions=source)
    assert written == [tmp_path / "descriptions.csv"]  # beside the folder
    rows = list(csv.DictReader(written[0].open(newline="")))
    assert [r["generated_video_name"] for r in rows] == [v.name for v in run.videos]
    assert rows[0]["description"] == f"prompt of {name(1)}, quoted"
    assert list(rows[0]) == ["scenario", "description", "category", "generated_video_name"]

    short = write_descriptions(tmp_path / "short.csv", [name(1), name(2)])
    out = tmp_path / "never.csv"
    with pytest.raises(submission.SubmissionError) as error:
        submission.check_and_write(folder, views=VIEWS, descriptions=short, descriptions_out=out)
    assert f"generated_video_name column: {name(3)}, {name(4)}; give the CSV" in str(error.value)
    assert not out.exists()  # nothing is written when a check fails


def test_a_descriptions_csv_without_the_needed_columns_or_in_place_is_refused(tmp_path):
    folder = write_run(tmp_path / "run")
    bad = tmp_path / "bad.csv"
    bad.write_text("scenario,prompt\na,b\n")
    with pytest.raises(submission.SubmissionError, match=r"lacks the column\(s\)"):
        submission.check_and_write(folder, views=VIEWS, descriptions=bad)
    with pytest.raises(submission.SubmissionError, match="is not a file"):
        submission.check_and_write(folder, views=VIEWS, descriptions=tmp_path / "absent.csv")
    source = write_descriptions(tmp_path / "descriptions.csv", [name(i) for i in range(1, 5)])
    with pytest.raises(submission.SubmissionError, match="would be overwritten"):
        submission.check_and_write(folder, views=VIEWS, descriptions=source)
    with pytest.raises(submission.SubmissionError, match="needs --descriptions"):
        submission.check_and_write(folder, views=VIEWS, descriptions_out=tmp_path / "x.csv")


def test_the_card_has_the_reference_fields_with_the_measured_ones_filled(tmp_path):
    folder = write_run(tmp_path / "stance-bpp-run_02")
    views = [Path(name(i)).stem for i in range(1, VIEWS + 1)]
    provenance.write_resolved_config(
        folder,
        "generate",
        {"model": "THUDM/CogVideoX1.5-5B-I2V", "trained": "results/train/rgb_depth",
         "fps": 8, "views": views, "seconds": 50.0, "device": "NVIDIA H100 80GB HBM3"},
    )  # fmt: skip
    _, written = submission.check_and_write(folder, views=VIEWS, card=tmp_path / "card.yaml")
    text = written[0].read_text()
    card = yaml.safe_load(text)
    assert {section: list(fields) for section, fields in card.items()} == REFERENCE_CARD
    info = card["public_info"]
    assert info["fps"] == 8 and info["resolution"] == "16x16"
    assert info["input_type"] == "i2v" and info["descriptions"] == "bpp"
    assert info["generation_time"] == 12.5 and info["generation_ngpu"] == 1
    assert info["generation_gpu"] == "NVIDIA H100 80GB HBM3"
    assert info["bon_sampling"] == 1 and info["prompt_upsampling"] is False
    for left in ("organization", "model", "model_version", "availability"):
        assert info[left] is None, left
    assert all(value is None for value in card["terms"].values())
    assert all(value is None for value in card["warranties"].values())
    assert all(value is None for value in card["reported_scores"].values())
    assert "base model THUDM/CogVideoX1.5-5B-I2V" in text
    assert 'terms_version: null  # fill in: must be "1.0"' in text
    assert "4 videos, 8 fps, 16x16" in text


def test_a_card_without_a_record_or_a_run_name_leaves_those_fields_to_the_user(tmp_path):
    folder = write_run(tmp_path / "run_01")
    run = submission.check_run(folder, views=VIEWS)
    card = yaml.safe_load(submission.card_text(run))["public_info"]
    assert card["descriptions"] is None and card["generation_time"] is None
    assert card["fps"] == 8


def test_the_command_prints_the_facts_or_the_problems(tmp_path, capsys):
    folder = write_run(tmp_path / "run")
    card = tmp_path / "card.yaml"
    argv = ["evaluate", "physics-iq-check", str(folder), "--views", str(VIEWS)]
    assert cli.main([*argv, "--fps", "8", "--card", str(card)]) == 0
    out = capsys.readouterr().out
    assert "4 videos, 8 fps, 16x16, each 5 s: follows" in out and f"wrote {card}" in out
    assert cli.main([*argv, "--fps", "16"]) == 2
    assert "not the 16 fps" in capsys.readouterr().err
