"""Physics-IQ prompts: the benchmark's `descriptions/data.yaml` -> a descriptions CSV.

The CSV is the one google-deepmind/physics-IQ-benchmark's `physiq/generate_descriptions.py`
writes: columns scenario, description, category, generated_video_name; one row per take and
view, sorted by ID; `scenario` = `<ID>_perspective-<view>_take-<k>_trimmed-<scene>.mp4`,
`generated_video_name` = `<ID>_perspective-<view>_trimmed-<scene>.mp4` (the generated
video's name, `physics_iq_folder.View.name`). Take-2 rows are written too: the reference's
scorer wants every take listed, and generation reads only the take-1 rows.

data.yaml fields read (others, e.g. the annotation fields, are ignored): `scene`,
`category`, `takes` (`take` and the left/center/right IDs), `subject-action` (required),
`scene-description`, `pre-action-scene-description` and the subject-action postfix.

Templaters (the `description` column):
- `base`: the reference's base templater (`physiq/templater/base.py`), re-implemented: its
  three fixed sentences (camera, style, only-the-described-actions), then pre-action, scene
  and subject action joined by spaces.
- `cogvideox`: the same facts written the way CogVideoX expects a prompt. THUDM trained
  CogVideoX on long, detailed captions and recommends rewriting short prompts into one
  detailed descriptive paragraph (THUDM/CogVideo `inference/convert_demo.py` at commit
  9be282d4, its i2v system prompt and t2v example captions, and the README's entry on
  it, which explains the rewrite by the long training captions).
  Followed from there: a single English paragraph of complete sentences that starts
  directly with what is visible (no "The video shows"), describes the motion starting from
  the first frame (the i2v case: the switch frame is frame 0), names no camera cut, switch
  or perspective change, and is about as long as THUDM's example captions (about 100 words;
  this templater writes 60-125). So: scene, then set-up, then the action and its postfix,
  then a sentence on the realism and the category of the demonstration, then the static
  camera. Each prompt must
  fit CogVideoX1.5's text limit, 224 T5 tokens (the prompt length limit in the
  THUDM/CogVideoX1.5-5B-I2V model card); the pipeline truncates longer prompts silently at
  `train.max_text_seq_length` (226 in configs/paper.yaml; the small configs' 32 cut every
  benchmark prompt). An over-long prompt is shortened, least informative sentence first,
  with a warning; one that cannot fit is refused.

The subject-action postfix (e.g. "Then the rotation stops.", 4 scenes): data.yaml spells
the key `subject-action post-fix`, but the reference's loader (`physiq/dataset.py`) reads
only `subject-action-postfix`, so its shipped descriptions_base.csv (and every CSV its
generator writes) silently lacks the postfixes, although the generator appends them by
default and says not to turn them off for the Verified track. Both spellings are read
here and the postfix is appended by default: it states what the real takes show (the
rotation stops), which the scoring compares against. `--no-action-postfix` reproduces the
shipped CSVs exactly.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from stance.errors import UserError
from stance.physics_iq_folder import View

log = logging.getLogger(__name__)

COLUMNS = ("scenario", "description", "category", "generated_video_name")
VIEWS = ("left", "center", "right")
# The file's spelling first; the reference's loader reads only the second.
POSTFIX_KEYS = ("subject-action post-fix", "subject-action-postfix")
COGVIDEOX_MAX_TOKENS = 224  # CogVideoX1.5-5B-I2V model card: prompt length limit

TokenCounter = Callable[[str], int]


class PromptDataError(UserError, ValueError):
    """data.yaml is missing, unreadable or lacks a field the prompts need."""


class PromptTooLong(UserError, ValueError):
    """A prompt does not fit the text encoder's token limit even when shortened."""


@dataclass(frozen=True)
class Take:
    number: int
    ids: tuple[tuple[str, int], ...]  # (view, ID), in the file's order


@dataclass(frozen=True)
class Scene:
    """One data.yaml entry, as the templaters use it."""

    name: str  # e.g. "ball-and-block-fall"
    category: str
    takes: tuple[Take, ...]
    subject_action: str
    scene_description: str = ""
    pre_action: str = ""
    action_postfix: str = ""

    def action(self, with_postfix: bool) -> str:
        if with_postfix and self.action_postfix:
            return f"{self.subject_action} {self.action_postfix}"
        return self.subject_action


@dataclass(frozen=True)
class Row:
    id: int
    scenario: str
    description: str
    category: str
    generated_video_name: str


# --- reading data.yaml ----------------------------------------------------------------


def read_scenes(path: str | Path) -> list[Scene]:
    """Every scene of a data.yaml, validated: an error names the file, the scene and the
    field, and says what to fix."""
    path = Path(path)
    entries = _scene_entries(path)
    scenes = [_scene(entry, path, index) for index, entry in enumerate(entries, start=1)]
    _refuse_repeated_ids(scenes, path)
    return scenes


def _scene_entries(path: Path) -> list:
    if not path.is_file():
        raise PromptDataError(
            f"{path} is not a file; give the benchmark repository's descriptions/data.yaml"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PromptDataError(f"{path} is not valid YAML ({exc}); download it again") from exc
    entries = data.get("scenes") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise PromptDataError(
            f"{path}: expected a top-level `scenes:` list of scene entries (the benchmark's "
            "descriptions/data.yaml layout); give that file"
        )
    return entries


def _scene(entry, path: Path, index: int) -> Scene:
    if not isinstance(entry, dict):
        raise PromptDataError(f"{path}: scene entry {index} is not a mapping of fields")
    name = entry.get("scene")
    if not isinstance(name, str) or not name.strip():
        raise PromptDataError(f"{path}: scene entry {index} has no `scene` name; add it")
    if "_" in name or "/" in name or name != name.strip():
        # File names are split on "_" by the benchmark's code.
        raise PromptDataError(
            f"{path}: scene {name!r} (entry {index}): a scene name may not contain '_', '/' "
            "or surrounding spaces; rename it"
        )
    where = f"{path}: scene {name!r} (entry {index})"
    return Scene(
        name=name,
        category=_text(entry, "category", where, required=True),
        takes=_takes(entry.get("takes"), where),
        subject_action=_text(entry, "subject-action", where, required=True),
        scene_description=_text(entry, "scene-description", where),
        pre_action=_text(entry, "pre-action-scene-description", where),
        action_postfix=_postfix(entry, where),
    )


def _text(entry: dict, key: str, where: str, required: bool = False) -> str:
    value = entry.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise PromptDataError(f"{where} has no {key!r}; add it (every prompt uses it)")
        return ""
    if not isinstance(value, str):
        raise PromptDataError(f"{where}: {key!r} must be text, got {value!r}; quote it")
    return value


def _postfix(entry: dict, where: str) -> str:
    """The subject-action postfix under either spelling (the module docstring says why)."""
    given = {key: _text(entry, key, where) for key in POSTFIX_KEYS if key in entry}
    values = {value for value in given.values() if value}
    if len(values) > 1:
        raise PromptDataError(
            f"{where} gives the postfix twice with different text ({sorted(given)}); "
            "keep one of the two keys"
        )
    return values.pop() if values else ""


def _takes(takes, where: str) -> tuple[Take, ...]:
    if not isinstance(takes, list) or not takes:
        raise PromptDataError(
            f"{where} has no 'takes' list; add `takes: [{{take: 1, left: <ID>, center: <ID>, "
            "right: <ID>}}, ...]`"
        )
    return tuple(_take(take, where) for take in takes)


def _take(take, where: str) -> Take:
    if not isinstance(take, dict) or "take" not in take:
        raise PromptDataError(f"{where}: every entry of 'takes' needs a `take:` number")
    number = _id(take["take"], f"{where}, 'take'")
    unknown = sorted(set(take) - {"take", *VIEWS})
    if unknown:
        raise PromptDataError(
            f"{where}, take {number}: unknown view(s) {unknown}; the views are {list(VIEWS)}"
        )
    ids = tuple(
        (view, _id(value, f"{where}, take {number} {view}"))
        for view, value in take.items()
        if view != "take" and value is not None
    )
    if not ids:
        raise PromptDataError(f"{where}, take {number} lists no view IDs; add {list(VIEWS)}")
    return Take(number, ids)


def _id(value, where: str) -> int:
    """A positive number, given as 7 or "0007" (the reference coerces both to int)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 9999:
        raise PromptDataError(f"{where}: {value!r} is not a number from 1 to 9999; fix it")
    return value


def _refuse_repeated_ids(scenes: list[Scene], path: Path) -> None:
    owner: dict[int, str] = {}
    for scene in scenes:
        for take in scene.takes:
            for view, number in take.ids:
                here = f"{scene.name} take {take.number} {view}"
                if number in owner:
                    raise PromptDataError(
                        f"{path}: ID {number:04d} is given to both {owner[number]} and "
                        f"{here}; every video needs its own ID"
                    )
                owner[number] = here


# --- names ------------------------------------------------------------------------------


def scenario_name(number: int, view: str, take: int, scene: str) -> str:
    """The real video's key in the reference's descriptions CSV."""
    return f"{number:04d}_perspective-{view}_take-{take}_trimmed-{scene}.mp4"


def generated_video_name(number: int, view: str, scene: str) -> str:
    """The generated video's file name (the project's `View.name`, the reference's naming)."""
    stem = View(f"{number:04d}", f"perspective-{view}", f"trimmed-{scene}", take2_id="").name
    return f"{stem}.mp4"


# --- token counting ---------------------------------------------------------------------

# A letter run, a single digit, or a single other non-space character.
_PIECES = re.compile(r"[A-Za-z]+|\d|[^\sA-Za-z\d]")


def estimate_t5_tokens(text: str) -> int:
    """A deliberately high estimate of T5's token count, from whitespace-split words:
    every letter run costs one token per 4 letters (rounded up), every digit and every other
    character one, a word that does not start with a letter one more (SentencePiece's
    word-start marker can stand alone before it), plus the end-of-sequence token. T5's
    32k-piece vocabulary keeps common English words whole, so real counts are lower (give
    --tokenizer for the exact count)."""
    count = 1  # </s>
    for word in text.split():
        for piece in _PIECES.findall(word):
            count += math.ceil(len(piece) / 4) if piece.isalpha() else 1
        if not word[0].isalpha():
            count += 1
    return count


def t5_token_counter(folder: str | Path) -> TokenCounter:
    """Exact counts from a local T5 tokenizer: a tokenizer folder or a pipeline folder
    holding tokenizer/ (e.g. a downloaded THUDM/CogVideoX1.5-5B-I2V)."""
    folder = Path(folder)
    if (folder / "tokenizer").is_dir():
        folder = folder / "tokenizer"
    if not folder.is_dir():
        raise PromptDataError(
            f"--tokenizer {folder} is not a folder; give a local tokenizer folder or leave "
            "it out for the estimate"
        )
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise PromptDataError(
            f"--tokenizer {folder} holds no loadable tokenizer ({exc}); give the pipeline's "
            "tokenizer/ folder"
        ) from exc
    return lambda text: len(tokenizer(text).input_ids)  # input_ids end with </s>


# --- templaters -------------------------------------------------------------------------

BASE_CAMERA = (
    "Static locked-off single-shot with fixed frame throughout filmed with constant "
    "framerate in real-time."
)
BASE_STYLE = "The scene shows a realistic scientific demonstration."
BASE_ACTION = "The scene only contains the described setup and actions."


def base_prompt(scene: Scene, with_postfix: bool = True) -> str:
    """The reference's base templater: fixed sentences, then set-up, scene and action."""
    parts = (
        BASE_CAMERA,
        BASE_STYLE,
        BASE_ACTION,
        scene.pre_action,
        scene.scene_description,
        scene.action(with_postfix),
    )
    return " ".join(part for part in parts if part)


COGVIDEOX_CAMERA = (
    "The camera is locked off for the whole shot: one continuous real-time take from a "
    "single fixed viewpoint, with no cuts, zoom, pan or change of perspective."
)
COGVIDEOX_CAMERA_SHORT = "Static camera, one continuous real-time shot."


def realism_sentence(category: str) -> str:
    """The reference's style and only-the-described-actions sentences in caption form,
    with the scene's physics category (e.g. "Fluid Dynamics") as context."""
    return (
        f"It is a realistic {category.strip().lower()} demonstration: the objects move only "
        "as real-world physics dictates, with natural speed, weight and contact, and nothing "
        "else enters or happens in the scene."
    )


class CogVideoXTemplater:
    """One descriptive paragraph per scene, within the token limit (module docstring)."""

    def __init__(
        self,
        max_tokens: int = COGVIDEOX_MAX_TOKENS,
        count_tokens: TokenCounter = estimate_t5_tokens,
        with_postfix: bool = True,
    ):
        self.max_tokens = max_tokens
        self.count_tokens = count_tokens
        self.with_postfix = with_postfix

    def __call__(self, scene: Scene) -> str:
        dropped: list[str] = []
        for drop in self._shortenings():
            prompt = self._compose(scene, drop)
            tokens = self.count_tokens(prompt)
            if tokens <= self.max_tokens:
                if drop:
                    log.warning(
                        "%s: the full prompt exceeds %d tokens; shortened "
                        "to %d tokens by leaving out: %s",
                        scene.name,
                        self.max_tokens,
                        tokens,
                        ", ".join(drop),
                    )
                return prompt
            dropped = drop
        raise PromptTooLong(
            f"scene {scene.name!r}: even the shortest prompt (its subject action and "
            f"a static-camera sentence, without {', '.join(dropped)}) is {tokens} tokens, "
            f"over the limit of {self.max_tokens}; shorten the scene's subject-action in "
            "data.yaml or raise --max-tokens (at most the text length the model was "
            "trained with)"
        )

    @staticmethod
    def _shortenings() -> list[tuple[str, ...]]:
        """What to leave out, least informative first: the long camera sentence (a short
        one stays), the realism sentence, the set-up before the action, the scene."""
        order = ("the long camera sentence", "the realism sentence", "the set-up", "the scene")
        return [order[:k] for k in range(len(order) + 1)]

    def _compose(self, scene: Scene, drop: tuple[str, ...]) -> str:
        parts = (
            ("the scene", scene.scene_description),
            ("the set-up", scene.pre_action),
            ("", scene.action(self.with_postfix)),
            ("the realism sentence", realism_sentence(scene.category)),
            ("the long camera sentence", COGVIDEOX_CAMERA),
        )
        sentences = [text for label, text in parts if text and label not in drop]
        if "the long camera sentence" in drop:
            sentences.append(COGVIDEOX_CAMERA_SHORT)
        return " ".join(sentences)


TEMPLATERS = ("base", "cogvideox")


def templater(
    name: str,
    with_postfix: bool = True,
    max_tokens: int = COGVIDEOX_MAX_TOKENS,
    count_tokens: TokenCounter = estimate_t5_tokens,
) -> Callable[[Scene], str]:
    """The prompt function of a templater name."""
    if name == "base":
        return _over_budget_warning(
            lambda scene: base_prompt(scene, with_postfix), max_tokens, count_tokens
        )
    if name == "cogvideox":
        return CogVideoXTemplater(max_tokens, count_tokens, with_postfix)
    raise PromptDataError(f"templater {name!r}: expected one of {list(TEMPLATERS)}")


def _over_budget_warning(prompt, max_tokens: int, count_tokens: TokenCounter):
    """The base prompt is the reference's and is never changed; warn when the model would
    only see the start of it."""

    def checked(scene: Scene) -> str:
        text = prompt(scene)
        tokens = count_tokens(text)
        if tokens > max_tokens:
            log.warning(
                "%s: the base prompt is %d tokens (> %d): the text encoder will see only its start",
                scene.name,
                tokens,
                max_tokens,
            )
        return text

    return checked


# --- the CSV ----------------------------------------------------------------------------


def description_rows(scenes: Iterable[Scene], prompt: Callable[[Scene], str]) -> list[Row]:
    """One row per take and view of every scene, sorted by ID (each scene's prompt once)."""
    rows = []
    for scene in scenes:
        text = prompt(scene)
        for take in scene.takes:
            for view, number in take.ids:
                rows.append(
                    Row(
                        number,
                        scenario_name(number, view, take.number, scene.name),
                        text,
                        scene.category,
                        generated_video_name(number, view, scene.name),
                    )
                )
    return sorted(rows, key=lambda row: row.id)


def write_csv(rows: Iterable[Row], out: str | Path) -> Path:
    """The CSV as pandas' `to_csv(index=False)` writes it (the reference's files):
    minimal quoting, "\\n" line ends."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([getattr(row, column) for column in COLUMNS])
    return out


def write_prompts(
    data: str | Path,
    templater_name: str,
    out: str | Path,
    *,
    with_postfix: bool = True,
    max_tokens: int = COGVIDEOX_MAX_TOKENS,
    tokenizer: str | Path | None = None,
) -> list[Row]:
    """data.yaml -> the descriptions CSV of one templater (`stance evaluate
    physics-iq-prompts`)."""
    if max_tokens < 1:
        raise PromptDataError(f"--max-tokens {max_tokens}: give a positive number")
    count = t5_token_counter(tokenizer) if tokenizer else estimate_t5_tokens
    prompt = templater(templater_name, with_postfix, max_tokens, count)
    rows = description_rows(read_scenes(data), prompt)
    write_csv(rows, out)
    return rows
