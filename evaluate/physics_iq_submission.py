"""A generated Physics-IQ run folder against the Verified track's submission rules, its
descriptions CSV and a submission card skeleton (`stance evaluate physics-iq-check`).

The rules, as google-deepmind/physics-IQ-benchmark's `physiq/submit_verified.py` checks
them before upload (and `run_physics_iq.py` before scoring):
- exactly 198 `.mp4` files (66 scenes x 3 views), the i-th in sorted order named
  `<i:04d>_...` (0001_ .. 0198_);
- every video 5 s long within 0.001 s (the container's duration, as ffprobe's
  `format=duration` reports it; measured here with PyAV, the project's video IO);
- one frame rate across the folder (the stream's r_frame_rate), within 0.01 of the card's
  `fps`; one resolution, equal to the card's `resolution`;
- `descriptions.csv` with columns scenario, description, generated_video_name, listing
  every submitted file name under generated_video_name.
Every violation is reported at once, each with the files and the fix.

The card skeleton has the reference card's fields (submission_verified/submission.yaml at
commit f0e2def4) in its order. Measured or known fields are filled: fps, resolution,
input_type (i2v: STANCE generates from the benchmark's switch frame), descriptions (op or
bpp, from a folder named `<model>-<bpp|op>-run_<NN>`), generation time per video and GPU
count (from the generate job's record, generate.resolved.json, when the folder has it).
The rest, the terms and the warranties are null with a comment: the submitter fills them,
and the reference's submission check refuses them empty.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import av

from stance import provenance
from stance.errors import UserError
from stance.physics_iq_folder import SECONDS

VIEWS = 198  # 66 scenes x 3 views, take 1
DURATION_TOLERANCE_S = 0.001
FPS_TOLERANCE = 0.01
RUN_FOLDER = re.compile(r"^(?P<model>.+)-(?P<descriptions>bpp|op)-run_(?P<run>\d{2})$")
DESCRIPTION_COLUMNS = ("scenario", "description", "generated_video_name")
ID_PREFIX = re.compile(r"^(\d{4})_")
LISTED = 5  # names shown per problem before "and N more"


class SubmissionError(UserError, ValueError):
    """A run folder, or its descriptions, breaks the Verified submission rules."""


@dataclass(frozen=True)
class Video:
    """What a video's container says; `error` is set when PyAV cannot read it."""

    name: str
    duration: float | None = None  # seconds
    fps: float | None = None
    width: int = 0
    height: int = 0
    error: str = ""

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class Run:
    """A run folder that follows the rules."""

    folder: Path
    videos: tuple[Video, ...]

    @property
    def fps(self) -> float:
        return self.videos[0].fps

    @property
    def resolution(self) -> str:
        return self.videos[0].resolution


def probe(path: Path) -> Video:
    """Duration (container), frame rate (r_frame_rate) and size of a video's first
    stream, the fields the reference reads with ffprobe."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.base_rate or stream.average_rate
            duration = container.duration
            return Video(
                path.name,
                None if duration is None else duration / av.time_base,
                None if rate is None else float(rate),
                stream.codec_context.width,
                stream.codec_context.height,
            )
    except (av.FFmpegError, IndexError, OSError) as exc:
        return Video(path.name, error=str(exc) or type(exc).__name__)


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:LISTED])
    return shown if len(names) <= LISTED else f"{shown} and {len(names) - LISTED} more"


# --- the checks: each returns its problems, each problem names the files and the fix ----


def count_problems(names: list[str], views: int) -> list[str]:
    if len(names) == views:
        return []
    return [
        f"{len(names)} .mp4 files, expected {views} (one per view); the naming problems "
        "below say which are missing or extra"
    ]


def naming_problems(names: list[str], views: int) -> list[str]:
    """The sorted i-th name must start with `<i:04d>_`: that holds exactly when the ID
    prefixes are 0001..views, each once, so the problems are told per ID."""
    problems = []
    unprefixed = [name for name in names if not ID_PREFIX.match(name)]
    if unprefixed:
        problems.append(
            f"names without a 4-digit ID prefix (`0001_...`): {_listing(unprefixed)}; rename "
            "them <ID>_perspective-<view>_trimmed-<scene>.mp4 or move them out"
        )
    ids = Counter(int(ID_PREFIX.match(name).group(1)) for name in names if name not in unprefixed)
    repeated = [f"{i:04d}" for i in sorted(ids) if ids[i] > 1]
    if repeated:
        problems.append(f"IDs used by more than one file: {_listing(repeated)}; keep one each")
    beyond = [f"{i:04d}" for i in sorted(ids) if not 1 <= i <= views]
    if beyond:
        problems.append(
            f"IDs outside 0001..{views:04d}: {_listing(beyond)}; only the take-1 IDs of "
            "the benchmark are submitted"
        )
    missing = [f"{i:04d}" for i in range(1, views + 1) if i not in ids]
    if missing:
        problems.append(f"no video for ID {_listing(missing)}; generate them")
    return problems


def unreadable_problems(videos: list[Video]) -> list[str]:
    bad = [f"{v.name} ({v.error})" for v in videos if v.error]
    if not bad:
        return []
    return [f"PyAV cannot read {_listing(bad)}; write them again"]


def _five_seconds(video: Video) -> bool:
    return video.duration is not None and math.isclose(
        video.duration, SECONDS, abs_tol=DURATION_TOLERANCE_S
    )


def duration_problems(videos: list[Video]) -> list[str]:
    wrong = [
        f"{v.name} ({'unknown' if v.duration is None else f'{v.duration:.4f} s'})"
        for v in videos
        if not v.error and not _five_seconds(v)
    ]
    if not wrong:
        return []
    return [
        f"not {SECONDS} s (± {DURATION_TOLERANCE_S} s) long: {_listing(wrong)}; write exactly "
        f"{SECONDS} x fps frames at the folder's frame rate (the generate job does)"
    ]


def fps_problems(videos: list[Video], expected_fps: float | None) -> list[str]:
    readable = [v for v in videos if not v.error]
    problems = []
    unknown = [v.name for v in readable if v.fps is None]
    if unknown:
        problems.append(f"no frame rate in {_listing(unknown)}; write them again")
    rates = Counter(v.fps for v in readable if v.fps is not None)
    if len(rates) > 1:
        common = rates.most_common(1)[0][0]
        odd = [f"{v.name} ({v.fps:g})" for v in readable if v.fps not in (None, common)]
        problems.append(
            f"more than one frame rate: {rates[common]} videos at {common:g} fps, but "
            f"{_listing(odd)}; write every video at one frame rate"
        )
    elif rates and expected_fps is not None:
        (rate,) = rates
        if not math.isclose(rate, expected_fps, abs_tol=FPS_TOLERANCE):
            problems.append(
                f"the videos are {rate:g} fps, not the {expected_fps:g} fps "
                f"(± {FPS_TOLERANCE}) asked for; write them at that rate or give their rate "
                "with --fps"
            )
    return problems


def resolution_problems(videos: list[Video]) -> list[str]:
    sizes = Counter(v.resolution for v in videos if not v.error)
    if len(sizes) <= 1:
        return []
    common = sizes.most_common(1)[0][0]
    odd = [f"{v.name} ({v.resolution})" for v in videos if not v.error and v.resolution != common]
    return [
        f"more than one resolution: {sizes[common]} videos are {common}, but {_listing(odd)}; "
        "write every video at one size (the card states one resolution)"
    ]


def description_problems(names: list[str], descriptions: dict[str, dict]) -> list[str]:
    missing = [name for name in names if name not in descriptions]
    if not missing:
        return []
    return [
        f"not in the descriptions CSV's generated_video_name column: {_listing(missing)}; "
        "give the CSV the run was generated from"
    ]


def check_run(
    folder: str | Path,
    views: int = VIEWS,
    expected_fps: float | None = None,
    descriptions: dict[str, dict] | None = None,
) -> Run:
    """The run folder's videos when they follow every rule; else one SubmissionError that
    lists every problem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SubmissionError(f"{folder} is not a folder; give a generated run's folder")
    if views < 1:
        raise SubmissionError(f"--views {views}: give a positive number")
    names = sorted(path.name for path in folder.glob("*.mp4"))
    videos = [probe(folder / name) for name in names]
    problems = [
        *count_problems(names, views),
        *naming_problems(names, views),
        *unreadable_problems(videos),
        *duration_problems(videos),
        *fps_problems(videos, expected_fps),
        *resolution_problems(videos),
        *(description_problems(names, descriptions) if descriptions is not None else []),
    ]
    if problems:
        raise SubmissionError(
            f"{folder} does not follow the Physics-IQ Verified submission rules "
            f"({len(problems)} problem{'s' * (len(problems) > 1)}):\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )
    return Run(folder, tuple(videos))


# --- descriptions -----------------------------------------------------------------------


def read_descriptions(path: str | Path) -> tuple[list[str], dict[str, dict]]:
    """(columns, generated_video_name -> row) of a descriptions CSV (the benchmark's or
    `stance evaluate physics-iq-prompts`')."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(
            f"--descriptions {path} is not a file; give the descriptions CSV the run was "
            "generated from"
        )
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        columns = list(reader.fieldnames or [])
    missing = [column for column in DESCRIPTION_COLUMNS if column not in columns]
    if missing:
        raise SubmissionError(
            f"{path} lacks the column(s) {missing}; a descriptions CSV has "
            f"{list(DESCRIPTION_COLUMNS)} (and category)"
        )
    by_name: dict[str, dict] = {}
    for row in rows:
        name = row["generated_video_name"].strip()
        if name in by_name and by_name[name]["description"] != row["description"]:
            raise SubmissionError(
                f"{path}: {name} has two different descriptions; keep one row per video"
            )
        by_name.setdefault(name, row)
    return columns, by_name


def write_run_descriptions(
    run: Run, columns: list[str], by_name: dict[str, dict], out: str | Path
) -> Path:
    """The rows of the run's videos, in the folder's order, with the source's columns."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for video in run.videos:
            writer.writerow(by_name[video.name])
    return out


# --- the card ---------------------------------------------------------------------------

FILL = "fill in"
# (section, field) in the reference card's order; None = left for the submitter.
CARD_FIELDS = {
    "public_info": (
        "organization",
        "model",
        "model_version",
        "input_type",
        "parameters",
        "fps",
        "resolution",
        "bon_sampling",
        "bon_sampling_method",
        "bon_sampling_source",
        "prompt_upsampling",
        "prompt_upsampling_method",
        "prompt_upsampling_source",
        "descriptions",
        "templater",
        "availability",
        "model_source",
        "provider",
        "date",
        "tech_report",
        "comments",
        "upsample_cost",
        "upsample_gpu",
        "upsample_ngpu",
        "upsample_time",
        "generation_cost",
        "generation_gpu",
        "generation_ngpu",
        "generation_time",
    ),
    "reported_scores": tuple(
        f"{score}_{stat}"
        for score in ("physiq", "spatial_iou", "weighted_spatial_iou", "spatiotemporal_iou", "mse")
        for stat in ("mean", "std")
    ),
    "terms": ("terms_version", "terms_accepted", "accepted_on_behalf_of", "accepted_at"),
    "warranties": (
        "has_rights_to_submit",
        "no_ip_infringement",
        "permitted_by_provider_tos",
        "no_personal_data_in_content",
        "metadata_accurate",
    ),
}

# Why a field is left empty, where the reason is more than "the submitter knows it".
CARD_HINTS = {
    "organization": "organisation, company or institute",
    "model": "the model's display name",
    "model_version": "exact checkpoint or API identifier",
    "parameters": "parameter count, or leave null if undisclosed",
    "descriptions": "op (descriptions_original.csv) or bpp (best-practice templater prompts)",
    "templater": "the bpp templater's name (base, cogvideox, ...) and whether action "
    "postfixes were appended; null for op",
    "availability": "public | api | research | private",
    "model_source": "URL of the model's paper or website",
    "date": "submission date",
    "upsample_cost": "only with prompt_upsampling: $ per prompt",
    "upsample_gpu": "only with prompt_upsampling on your own GPUs",
    "upsample_ngpu": "only with prompt_upsampling on your own GPUs",
    "upsample_time": "only with prompt_upsampling on your own GPUs",
    "generation_cost": "$ per video (estimate from GPU time)",
    "generation_gpu": "GPU model (the run record names it when a GPU sampled)",
    "generation_ngpu": "GPUs per generation",
    "generation_time": "GPU seconds per video x GPUs",
    "terms_version": 'must be "1.0" after reading the Verified submission terms',
    "terms_accepted": "true once accepted",
    "accepted_on_behalf_of": "full legal name of the submitting organisation",
    "accepted_at": "ISO 8601 time of acceptance",
}
SCORES_HINT = "Verified score in %, mean and std over runs"
WARRANTY_HINT = "must be true (the submission terms)"


def card_values(run: Run) -> dict[str, tuple[object, str]]:
    """field -> (value, comment) for everything this folder tells."""
    fps = int(run.fps) if float(run.fps).is_integer() else run.fps
    values: dict[str, tuple[object, str]] = {
        "input_type": ("i2v", "generated from the benchmark's switch frame"),
        "fps": (fps, "measured"),
        "resolution": (run.resolution, f"measured ({len(run.videos)} videos)"),
        "bon_sampling": (1, "one sample per view: no selection"),
        "prompt_upsampling": (False, "prompts are used as given: no rewriting model"),
    }
    match = RUN_FOLDER.match(run.folder.name)
    if match:
        values["descriptions"] = (match["descriptions"], f"from the folder name {run.folder.name}")
    values.update(_record_values(run))
    return values


def _record_values(run: Run) -> dict[str, tuple[object, str]]:
    """Generation time per video from the generate job's record, when the folder has one:
    the job samples every view in turn on one device."""
    if not (run.folder / "generate.resolved.json").is_file():
        return {}
    record = provenance.read_resolved_config(run.folder, "generate")
    seconds, views = record.get("seconds"), record.get("views") or []
    if not isinstance(seconds, int | float) or not views:
        return {}
    per_video = round(seconds / len(views), 1)
    source = f"generate.resolved.json: {seconds:.0f} s for {len(views)} videos on one device"
    values = {
        "generation_time": (per_video, source),
        "generation_ngpu": (1, "the generate job samples on one device"),
    }
    device = record.get("device")
    if isinstance(device, str) and device != "cpu":
        values["generation_gpu"] = (device, "generate.resolved.json: the device that sampled")
    if record.get("model"):
        trained = record.get("trained", "unknown")
        hint = f"{FILL}: the record names base model {record['model']}, variant {trained}"
        values["model_version"] = (None, hint)
    return values


def card_text(run: Run) -> str:
    """The card skeleton as YAML with a comment on every field."""
    values = card_values(run)
    lines = [
        "# Physics-IQ Verified submission card, written by `stance evaluate physics-iq-check`",
        f"# from {run.folder}: {len(run.videos)} videos, {run.fps:g} fps, {run.resolution}, "
        f"each {SECONDS} s.",
        "# Fields left null are for the submitter; the benchmark's submission check refuses",
        "# them empty. Compare with the reference's submission_verified/submission.yaml.",
    ]
    for section, fields in CARD_FIELDS.items():
        lines.append(f"{section}:")
        for field in fields:
            value, comment = values.get(field, (None, ""))
            if not comment:
                comment = _empty_field_comment(section, field)
            lines.append(f"  {field}: {json.dumps(value)}  # {comment}")
    return "\n".join(lines) + "\n"


def _empty_field_comment(section: str, field: str) -> str:
    if section == "reported_scores":
        return f"{FILL}: {SCORES_HINT}"
    if section == "warranties":
        return f"{FILL}: {WARRANTY_HINT}"
    hint = CARD_HINTS.get(field)
    return f"{FILL}: {hint}" if hint else "optional; null if it does not apply"


def write_card(run: Run, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(card_text(run), encoding="utf-8")
    return out


def check_and_write(
    folder: str | Path,
    *,
    views: int = VIEWS,
    expected_fps: float | None = None,
    descriptions: str | Path | None = None,
    descriptions_out: str | Path | None = None,
    card: str | Path | None = None,
) -> tuple[Run, list[Path]]:
    """`stance evaluate physics-iq-check`: check the folder (and its descriptions), then
    write the run's descriptions CSV (default: descriptions.csv beside the folder, the name
    the submission uses) and the card. Nothing is written when a check fails."""
    if descriptions_out and not descriptions:
        raise SubmissionError(
            "--descriptions-out needs --descriptions: the CSV the run was generated from"
        )
    columns, by_name = read_descriptions(descriptions) if descriptions else ([], None)
    run = check_run(folder, views, expected_fps, by_name)
    written = []
    if descriptions:
        out = Path(descriptions_out or run.folder.parent / "descriptions.csv")
        if out.resolve() == Path(descriptions).resolve():
            raise SubmissionError(
                f"{out} is the --descriptions source and would be overwritten by the run's "
                "rows; give another path with --descriptions-out"
            )
        written.append(write_run_descriptions(run, columns, by_name, out))
    if card:
        written.append(write_card(run, card))
    return run, written
