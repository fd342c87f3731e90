"""Training on the tiny stack: the objective learns, runs resume after a kill, generation
from user hints works end to end."""

import dataclasses
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from helpers import BIN, REPO, run_cli, write_cue_store
from safetensors.torch import load_file, save_file

from stance import config
from stance.errors import UserError
from stance.settings import Variant, as_dict
from stance.train import (
    babysitting,
    build,
    components,
    data,
    encode,
    objective,
    pretraining,
    tiny,
    trainer,
    weights,
)

SETTINGS = config.section_settings(
    "train", {"learning_rate": 2e-3, "checkpoint_every": 4, "steps": 16, "lr_warmup_steps": 6}
)
VARIANT = {"aux": "depth", "cue_mode": "dense_rope", "motion_tokens": 4}
SETTINGS_VARIANT = Variant(**VARIANT, seed=None)


def write_cache(path, tensors):
    save_file(tensors, path, metadata={"format": encode.FORMAT, "version": encode.VERSION})


def cache_tensors(g, frames=3, size=32):
    """A cache entry of the current format: 9 frames of 32x32 -> 3 latent frames of 4x4."""
    h = size // 8
    tensors = {
        "video_latents": torch.randn(frames, 4, h, h, generator=g),
        "depth_latents": torch.randn(frames, 4, h, h, generator=g),
        "seg_latents": torch.randn(frames, 4, h, h, generator=g),
        "prompt_embeds": torch.randn(32, 32, generator=g),
    }
    for stream in encode.STREAMS:
        tensors[f"{stream}_keyframe"] = torch.randint(0, 256, (size, size, 3), generator=g).to(
            torch.uint8
        )
        tensors[encode.image_latent_name(stream)] = torch.randn(1, 4, h, h, generator=g)
    return tensors


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    model = tiny.make_tiny(root / "tiny")
    caches, cues = root / "cache", root / "cues"
    caches.mkdir()
    cues.mkdir()
    g = torch.Generator().manual_seed(0)
    for k in range(3):
        write_cache(caches / f"train-{k:08d}.safetensors", cache_tensors(g))
        write_cue_store(cues / f"train-{k:08d}.zarr")
    return root, model, caches


def depth_step_parts(stack):
    """A fresh depth-stream model on the tiny stack, its scheduler and VAE config, and a
    batch of two cached clips with their cues."""
    _, model_dir, caches = stack
    model = weights.stance_transformer(str(model_dir), {"motion_tokens": 4}, False)
    scheduler = components.load_frozen(str(model_dir), False)["scheduler"]
    vae_config = components.load_config(
        __import__("diffusers").AutoencoderKLCogVideoX, str(model_dir), "vae", False
    )
    cues = data.cue_store_paths([caches.parent / "cues"])
    dataset = data.CacheDataset(sorted(caches.glob("*.safetensors")), "depth", cues, "cached")
    batch = torch.utils.data.default_collate([dataset[0], dataset[1]])
    return model, scheduler, vae_config, batch


def test_loss_is_finite_and_decreases_on_a_repeated_batch(stack):
    model, scheduler, vae_config, batch = depth_step_parts(stack)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        g = torch.Generator().manual_seed(123)  # same noise and timesteps every step
        terms = objective.training_step(model, scheduler, batch, vae_config, SETTINGS, g, "depth")
        loss = trainer.combine(terms, SETTINGS, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses


def test_motion_weighting_reaches_both_streams_of_a_training_step(stack):
    torch.manual_seed(0)
    model, scheduler, vae_config, batch = depth_step_parts(stack)

    def terms(strength):
        settings = dataclasses.replace(SETTINGS, motion_weighting=strength)
        g = torch.Generator().manual_seed(5)  # the same noise and timesteps
        with torch.no_grad():
            return objective.training_step(
                model, scheduler, batch, vae_config, settings, g, "depth"
            )

    plain, weighted, again = terms(0.0), terms(4.0), terms(4.0)
    for stream in ("rgb", "aux"):
        assert torch.isfinite(weighted[stream])
        assert not torch.isclose(plain[stream], weighted[stream]), stream
        assert torch.equal(weighted[stream], again[stream])


def test_warmup_rises_linearly_then_holds():
    factor = build.warmup(3)
    assert [factor(k) for k in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert build.warmup(0)(0) == 1.0


def test_fine_tuning_starts_from_the_pretrained_backbone(stack, tmp_path):
    """A variant built on the pretrained backbone takes its base weights and initialises
    its own new modules (cue tokenizer, domain embedding) as from a base checkpoint."""
    _, model_dir, _ = stack
    backbone = weights.stance_transformer(str(model_dir), {"cue_mode": "none"}, False)
    with torch.no_grad():
        for parameter in backbone.parameters():
            parameter.add_(1.0)  # "pretrained": every tensor moved, new modules included
    backbone.save_pretrained(tmp_path / "pre" / "transformer")
    options = {"cue_mode": "dense_rope", "aux": "depth", "motion_tokens": 4}
    torch.manual_seed(0)
    tuned = weights.stance_transformer(str(model_dir), options, False, init=tmp_path / "pre")
    torch.manual_seed(0)
    scratch = weights.stance_transformer(str(model_dir), options, False)
    pretrained, fresh = backbone.state_dict(), scratch.state_dict()
    for name, value in tuned.state_dict().items():
        new = name.startswith(tuned.new_module_prefixes)
        assert torch.equal(value, fresh[name] if new else pretrained[name]), name
    assert tuned.config.cue_mode == "dense_rope" and tuned.config.aux == "depth"
    with pytest.raises(UserError, match="stance train pretrain"):
        weights.stance_transformer(str(model_dir), options, False, init=tmp_path / "none")


def job_args(caches, root, settings) -> dict:
    return dict(
        cache_dirs=[caches],
        out_dir=root / "o",
        run_root=root / "r",
        settings=settings,
        model_source=str(root / "no-model"),  # never reached: the settings fail first
        code_hash="x",
        allow_download=False,
    )


def test_variants_need_the_backbone_when_pretraining_is_configured(stack, tmp_path):
    _, _, caches = stack
    settings = dataclasses.replace(SETTINGS, pretrain_steps=5, variants={"v": SETTINGS_VARIANT})
    with pytest.raises(UserError, match="--init"):
        trainer.fit_variant(**job_args(caches, tmp_path, settings), cue_dirs=[], variant_name="v")
    with pytest.raises(UserError, match="pretrain_steps is 0"):
        pretraining.pretrain_backbone(
            **job_args(caches, tmp_path, dataclasses.replace(settings, pretrain_steps=0))
        )


def test_timesteps_are_drawn_uniformly_or_shifted_towards_noise():
    from stance.settings import TimestepSampling

    uniform = TimestepSampling("uniform", 0.0, 1.0)
    shifted = TimestepSampling("logit_normal", 1.5, 1.0)
    draw = objective.draw_timesteps

    def draws(sampling, seed=0):
        return draw(sampling, 1000, 4096, torch.Generator().manual_seed(seed), "cpu")

    flat, high = draws(uniform), draws(shifted)
    for t in (flat, high):
        assert t.dtype == torch.long and t.min() >= 0 and t.max() <= 999
    assert abs(flat.float().mean().item() - 499.5) < 15
    # sigmoid(1.5 + n) has median sigmoid(1.5) = 0.818: most steps at high noise
    assert abs(high.float().median().item() - 818) < 15
    assert (high >= 500).float().mean() > 0.9
    assert torch.equal(high, draws(shifted)) and not torch.equal(high, draws(shifted, seed=1))


def test_pretraining_uses_the_plain_objective_whatever_fine_tuning_uses(
    stack, tmp_path, monkeypatch
):
    from stance.settings import TimestepSampling

    seen = []
    monkeypatch.setattr(trainer, "train", lambda job: seen.append(job.settings))
    shifted = TimestepSampling("logit_normal", 2.0, 1.0)
    settings = dataclasses.replace(
        SETTINGS, pretrain_steps=2, timestep_sampling=shifted, motion_weighting=4.0
    )
    pretraining.pretrain_backbone(**job_args(stack[2], tmp_path, settings))
    assert seen[0].timestep_sampling.distribution == "uniform"
    assert seen[0].motion_weighting == 0.0
    assert {"timestep_sampling", "motion_weighting"} <= set(pretraining.PRETRAIN_IGNORES)


def test_pretraining_is_passed_its_own_learning_rate():
    train = {"learning_rate": 1e-3, "pretrain_learning_rate": None, "steps": 9, "seed": 0}
    assert pretraining.passed_settings(train, ["seed"]) == {"learning_rate": 1e-3}
    own = pretraining.passed_settings({**train, "pretrain_learning_rate": 5e-4})
    assert own == {"learning_rate": 5e-4, "seed": 0}  # as a 5e-4 run without the key
    assert own == pretraining.passed_settings({**train, "learning_rate": 5e-4})


def test_pretraining_on_cpu_processes_gives_each_its_share_of_the_batch():
    train = {"micro_batch": 16, "pretrain_cpu_processes": 1, "steps": 9}
    assert pretraining.passed_settings(train) == {"micro_batch": 16}  # as before the key
    split = {**train, "pretrain_cpu_processes": 2}
    assert pretraining.passed_settings(split) == {"micro_batch": 16, "pretrain_cpu_processes": 2}
    settings = config.section_settings("train", split)
    assert pretraining.per_process_batch(settings, 2) == 8
    with pytest.raises(UserError, match=r"runs as 1 process.*--num_processes 2"):
        pretraining.per_process_batch(settings, 1)


@pytest.mark.parametrize(("threads", "each"), [(2, 1), (1, 1), (8, 4)])
def test_pretraining_processes_share_the_jobs_threads(threads, each):
    from stance.train import launch

    settings = config.section_settings("train", {"pretrain_cpu_processes": 2, "micro_batch": 4})
    prefix = launch.pretrain_command_prefix(settings)
    assert "--num_processes 2" in prefix and "CUDA_VISIBLE_DEVICES= " in prefix
    shown = subprocess.run(
        [
            "bash",
            "-c",
            prefix.split(" accelerate launch")[0]
            + " bash -c 'echo $OMP_NUM_THREADS $MKL_NUM_THREADS $OPENBLAS_NUM_THREADS'",
        ],
        env={**os.environ, **dict.fromkeys(launch.THREAD_VARIABLES, str(threads))},
        capture_output=True,
        text=True,
    )
    assert shown.stdout.split() == [str(each)] * 3
    one = config.section_settings("train", {"micro_batch": 4})
    assert launch.pretrain_command_prefix(one) == launch.command_prefix(one) == "stance"


def test_a_pretraining_job_trains_at_its_own_rate_under_one_run_hash(stack, tmp_path, monkeypatch):
    """Given by the rule as learning_rate, or by hand as pretrain_learning_rate beside
    another learning_rate: the same rate and the same run hash."""
    from stance.train import build

    seen = []
    monkeypatch.setattr(trainer, "train", lambda job: seen.append(job.settings))
    section = {"pretrain_steps": 2, "learning_rate": 5e-4}
    by_rule = config.section_from_json("train", json.dumps(section))
    by_hand = config.section_from_json(
        "train", json.dumps({**section, "learning_rate": 1e-3, "pretrain_learning_rate": 5e-4})
    )
    for settings in (by_rule, by_hand):
        pretraining.pretrain_backbone(**job_args(stack[2], tmp_path, settings))
    assert seen[0].learning_rate == seen[1].learning_rate == 5e-4
    hashes = {build.run_hash(s, SETTINGS_VARIANT, "m", []) for s in seen}
    assert len(hashes) == 1


def test_motion_weights_favour_the_positions_that_change():
    assert objective.motion_weights(torch.zeros(1, 4, 3, 5, 5), 0.0) is None
    still = torch.randn(1, 1, 3, 5, 5).expand(2, 4, 3, 5, 5)
    assert torch.allclose(objective.motion_weights(still, 4.0), torch.ones(2, 4, 1, 5, 5))
    moving = torch.zeros(1, 4, 3, 5, 5)
    for frame in range(4):  # a one-cell object crossing row 2
        moving[0, frame, :, 2, frame] = 1.0
    weights = objective.motion_weights(moving, 4.0)
    assert weights.shape == (1, 4, 1, 5, 5)
    assert torch.isclose(weights.mean(), torch.tensor(1.0))
    path, floor = weights[0, 1:, 0, 2, :4], weights[0, 1:, 0, 0, 0]
    assert path.max() > 5 * floor.max()  # the cells it leaves and enters count more
    assert torch.allclose(weights[0, 0], weights[0, 0, 0, 0, 0].expand(1, 5, 5))


def test_motion_weighted_loss_counts_errors_on_moving_cells_more():
    from diffusers import CogVideoXDPMScheduler

    scheduler = CogVideoXDPMScheduler(**tiny.SCHEDULER)
    target = torch.zeros(1, 2, 1, 2, 2)
    target[0, 1, 0, 0, 0] = 1.0  # one cell changes
    t = torch.tensor([500])
    alpha = scheduler.alphas_cumprod[t]
    noisy = scheduler.add_noise(target, torch.randn_like(target), t)
    exact = (alpha.sqrt() * noisy - target) / (1 - alpha).sqrt()  # predicts x0 exactly

    def loss(cell, weights):
        prediction = exact.clone()
        prediction[(0, 1, 0, *cell)] += 0.5  # the same error, on the moving or a still cell
        return objective.velocity_loss(scheduler, prediction, noisy, target, t, weights)

    assert loss((0, 0), None) > 0
    assert torch.isclose(loss((0, 0), None), loss((1, 1), None))
    weights = objective.motion_weights(target, 9.0)
    assert loss((0, 0), weights) > 3 * loss((1, 1), weights)


def test_batch_order_is_a_function_of_the_step():
    first = [data.batch_indices(s, 2, 5, seed=3) for s in range(10)]
    assert first == [data.batch_indices(s, 2, 5, seed=3) for s in range(10)]
    epoch = sorted(i for s in range(5) for i in data.batch_indices(s, 1, 5, seed=3))
    assert epoch == list(range(5))  # every clip once per epoch
    assert data.batch_indices(0, 1, 5, 3, rank=0, world=2) != data.batch_indices(
        0, 1, 5, 3, rank=1, world=2
    )


def test_image_latent_scaling_follows_the_pipeline_or_the_official_trainer():
    from types import SimpleNamespace

    vae = SimpleNamespace(scaling_factor=0.7, invert_scale_latents=True)
    assert objective.image_latent_scale(vae, "pipeline") == pytest.approx(1 / 0.7)
    assert objective.image_latent_scale(vae, "official") == 0.7


def _fit(stack, runs, out, steps=16, variant=VARIANT, **overrides):
    _, model_dir, caches = stack
    settings = {**as_dict(SETTINGS), "steps": steps, "variants": {"v": variant}, **overrides}
    return [
        str(BIN / "stance"),
        "train",
        "fit",
        "--cache",
        str(caches),
        "--cues",
        str(caches.parent / "cues"),
        "--variant",
        "v",
        "--model",
        str(model_dir),
        "--settings",
        json.dumps(settings),
        "--runs",
        str(runs),
        "--out",
        str(out),
        "--offline",
    ]


def _weights(out):
    return load_file(str(out / "transformer" / "diffusion_pytorch_model.safetensors"))


def _killed_and_resumed(stack, runs, out, **overrides) -> str:
    """A fit killed once after its first checkpoint, then run again; its stderr."""
    job = subprocess.Popen(
        _fit(stack, runs, out, **overrides), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not list(runs.glob("v/*/checkpoints/step-*/COMPLETE")):
        assert job.poll() is None and time.time() < deadline, "no checkpoint before exit"
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert not (out / "transformer").exists()
    done = subprocess.run(
        _fit(stack, runs, out, **overrides), check=True, capture_output=True, text=True
    )
    return done.stderr


@pytest.mark.slow
def test_a_variants_seed_trains_it_as_train_seed_would_under_its_own_run(stack, tmp_path):
    """A replicate (train.variants.<name>.seed) is the variant trained with that seed: the
    same weights as train.seed set to it, other weights than the default seed's."""

    def fit(name, variant, **overrides):
        args = _fit(stack, tmp_path / "runs", tmp_path / name, 4, variant, **overrides)
        subprocess.run(args, check=True, capture_output=True)
        return _weights(tmp_path / name)

    by_train_seed = fit("train_seed", VARIANT, seed=3)
    replicate = fit("replicate", {**VARIANT, "seed": 3})
    default = fit("default", VARIANT)
    assert all(torch.equal(by_train_seed[k], replicate[k]) for k in replicate)
    assert not all(torch.equal(default[k], replicate[k]) for k in replicate)
    record = json.loads((tmp_path / "replicate" / "train.resolved.json").read_text())
    assert record["train"]["seed"] == 3
    assert len(list((tmp_path / "runs" / "v").iterdir())) == 3  # three runs, none resumed


def test_an_unset_variant_seed_is_left_out_of_params_and_run_hashes():
    assert config.variant_entry({**VARIANT, "seed": None}) == VARIANT
    assert config.variant_entry({**VARIANT, "seed": 0}) == {**VARIANT, "seed": 0}

    @dataclasses.dataclass(frozen=True)
    class Unseedable:  # a variant that has no seed at all
        aux: str
        cue_mode: str
        motion_tokens: int

    unset = build.run_hash(SETTINGS, SETTINGS_VARIANT, "m", [])
    assert unset == build.run_hash(SETTINGS, Unseedable(**VARIANT), "m", [])
    assert unset != build.run_hash(SETTINGS, Variant(**VARIANT, seed=0), "m", [])


def test_pretraining_processes_at_one_leave_run_hashes_as_they_were():
    """Runs made before the setting existed computed what one process computes: they keep
    their hashes (and resume); two processes are another run."""
    one = build.run_identity(SETTINGS, SETTINGS_VARIANT, "m", [])
    assert "pretrain_cpu_processes" not in one["train"] and "micro_batch" in one["train"]
    two = dataclasses.replace(SETTINGS, pretrain_cpu_processes=2)
    assert (
        build.run_identity(two, SETTINGS_VARIANT, "m", [])["train"]["pretrain_cpu_processes"] == 2
    )
    assert build.run_hash(two, SETTINGS_VARIANT, "m", []) != build.run_hash(
        SETTINGS, SETTINGS_VARIANT, "m", []
    )


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_weights(stack, tmp_path):
    subprocess.run(
        _fit(stack, tmp_path / "runs_a", tmp_path / "a"), check=True, capture_output=True
    )
    assert "resumed" in _killed_and_resumed(stack, tmp_path / "runs_b", tmp_path / "b")
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = (tmp_path / "b" / "losses.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in losses[1:]] == list(range(1, 17))
    assert (tmp_path / "b" / "loss_curve.png").exists()


@pytest.mark.slow
def test_a_run_with_a_weight_average_saves_the_average_and_resumes_it(stack, tmp_path):
    """train.ema_decay: the saved transformer is the moving average (a near-zero decay
    averages nothing: the trained weights; 0.9 lags behind them), and a killed run resumes
    its average from the checkpoint to the same weights."""

    def fit(name, **overrides):
        subprocess.run(
            _fit(stack, tmp_path / f"runs_{name}", tmp_path / name, **overrides),
            check=True,
            capture_output=True,
        )
        return _weights(tmp_path / name)

    raw, instant, averaged = fit("raw"), fit("instant", ema_decay=1e-9), fit("avg", ema_decay=0.9)
    assert all(torch.allclose(raw[k], instant[k], atol=1e-6) for k in raw)
    moved = [k for k in raw if not torch.allclose(raw[k], averaged[k], atol=1e-6)]
    assert len(moved) > len(raw) // 2  # the average lags behind the trained weights
    _killed_and_resumed(stack, tmp_path / "runs_b", tmp_path / "b", ema_decay=0.9)
    resumed = _weights(tmp_path / "b")
    assert all(torch.equal(averaged[k], resumed[k]) for k in averaged)


@pytest.mark.slow
def test_bf16_with_gradient_checkpointing_tracks_float32(stack, tmp_path):
    """The settings of the real runs (bf16 autocast, gradient checkpointing) on the tiny
    stack: finite losses that follow the float32 run."""
    runs = {}
    for name, extra in {
        "fp32": {"mixed_precision": "no"},
        "bf16": {"mixed_precision": "bf16", "gradient_checkpointing": True},
    }.items():
        cmd = _fit(stack, tmp_path / f"runs_{name}", tmp_path / name, steps=3, **extra)
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        lines = (tmp_path / name / "losses.csv").read_text().splitlines()[1:]
        runs[name] = np.array([float(line.split(",")[1]) for line in lines])
    assert np.isfinite(runs["bf16"]).all() and len(runs["bf16"]) == 3
    np.testing.assert_allclose(runs["bf16"], runs["fp32"], rtol=0.05)
    assert "mixed precision bf16" in done.stderr


@pytest.mark.slow
def test_sigusr1_checkpoints_and_exits_for_requeue(stack, tmp_path):
    job = subprocess.Popen(
        _fit(stack, tmp_path / "runs", tmp_path / "out", steps=100000),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while (
        not list((tmp_path / "runs").glob("v/*/losses.csv"))
        or os.path.getsize(next((tmp_path / "runs").glob("v/*/losses.csv"))) < 60
    ):
        assert job.poll() is None and time.time() < deadline
        time.sleep(0.05)
    job.send_signal(signal.SIGUSR1)
    assert job.wait(timeout=60) == 75
    assert list((tmp_path / "runs").glob("v/*/checkpoints/step-*/COMPLETE"))


@pytest.mark.slow
def test_generation_from_hints_end_to_end(stack, tmp_path):
    from PIL import Image

    _, model_dir, _ = stack
    out = tmp_path / "trained"
    subprocess.run(_fit(stack, tmp_path / "runs", out, steps=2), check=True, capture_output=True)
    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(tmp_path / "key.png")
    mask = np.zeros((32, 32), np.uint8)
    mask[8:16, 8:16] = 255
    Image.fromarray(mask).save(tmp_path / "ball.png")
    (tmp_path / "hints.yaml").write_text(
        "keyframe: key.png\ninstances:\n  - {mask: ball.png, arrow: [1.5, 0.0], mass: 1.0}\n"
    )
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"models: {{video: {model_dir}}}\nrender: {{frames: 9}}\n")

    def generate(hints):
        store = tmp_path / "demo.zarr"
        run_cli("cues", "from-hints", str(hints), "--out", str(store), "--config", str(cfg))
        return run_cli(
            "generate",
            "hints",
            str(tmp_path / "demo.zarr"),
            "--trained",
            str(out),
            "--out",
            str(tmp_path / "demo.mp4"),
            "--config",
            str(cfg),
            "--offline",
            check=False,
        )

    # RGB+Depth conditions its depth stream on the keyframe's depth: hints without it
    # get a clear error naming the fix, hints with it generate.
    refused = generate(tmp_path / "hints.yaml")
    assert refused.returncode != 0 and "add `depth: <image>`" in refused.stderr
    Image.fromarray(np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1))).save(tmp_path / "d.png")
    text = (
        (tmp_path / "hints.yaml")
        .read_text()
        .replace("keyframe: key.png", "keyframe: key.png\ndepth: d.png")
    )
    (tmp_path / "hints.yaml").write_text(text)
    done = generate(tmp_path / "hints.yaml")
    assert done.returncode == 0, done.stderr[-2000:]
    from stance.video import read_video

    frames = read_video(tmp_path / "demo.mp4")
    assert frames.shape == (9, 32, 32, 3)
    assert read_video(tmp_path / "demo.aux.mp4").shape == (9, 32, 32, 3)


@pytest.mark.slow
def test_the_trainer_stops_before_the_job_time_limit(stack, tmp_path):
    env = {**os.environ, "STANCE_JOB_END_TIME": str(time.time() + 60)}  # limit in 60 s
    settings_cmd = _fit(stack, tmp_path / "runs", tmp_path / "out", steps=100000)
    result = subprocess.run(settings_cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 75, result.stderr[-2000:]
    assert "before the job's time limit" in result.stderr
    assert list((tmp_path / "runs").glob("v/*/checkpoints/step-*/COMPLETE"))
    history = next((tmp_path / "runs").glob("v/*/history.jsonl")).read_text().splitlines()
    events = [json.loads(line) for line in history]
    assert [e["event"] for e in events] == ["start", "stop"]
    assert events[1]["reason"] == "time limit" and events[1]["step"] >= 1


def test_squeue_end_times_parse():
    assert babysitting.parse_end_time("N/A") is None
    assert babysitting.parse_end_time("2026-11-21T12:00:00\n") == time.mktime(
        time.strptime("2026-11-21T12:00:00", "%Y-%m-%dT%H:%M:%S")
    )


def _cpu_launch_config(tmp_path, launch_config, precision="no"):
    """The repo's launch config as the train rule uses it, in `precision` (fp32 unless
    asked: bf16 on a CPU is exact only where it has bf16 units)."""
    import yaml

    conf = yaml.safe_load((REPO / "configs" / "accelerate" / launch_config).read_text())
    conf["mixed_precision"] = precision
    path = tmp_path / f"{precision}-{launch_config}"
    path.write_text(yaml.safe_dump(conf))
    return path


def hide_gpu() -> dict[str, str]:
    """CPU processes even where a GPU is visible (two ranks on one GPU stop NCCL:
    "Duplicate GPU detected"); nothing changes on machines without one."""
    return {"CUDA_VISIBLE_DEVICES": ""} if torch.cuda.is_available() else {}


def _launch(
    stack,
    tmp_path,
    launch_config,
    name,
    env=None,
    nodes=1,
    variant=VARIANT,
    steps=4,
    precision="no",
):
    """The train rule's command with 2 CPU processes: one node running `accelerate launch`
    with 2 processes, or 2 "nodes" (tests/fake_slurm/srun) with one process each."""
    import shlex

    from stance.train import launch

    settings = {"num_gpus": 2 // nodes, "num_nodes": nodes}
    launch_file = _cpu_launch_config(tmp_path, launch_config, precision)
    settings["accelerate_config"] = str(launch_file)
    fit = _fit(
        stack,
        tmp_path / f"runs_{name}",
        tmp_path / name,
        steps=steps,
        variant=variant,
        mixed_precision=precision,
    )
    command = (
        launch.command_prefix(config.section_settings("train", settings))
        + " "
        + shlex.join(fit[1:])
    )
    path = f"{REPO / 'tests' / 'fake_slurm'}:{BIN}:{os.environ['PATH']}"
    return subprocess.run(
        ["bash", "-c", command],
        env={**os.environ, **hide_gpu(), **(env or {}), "OMP_NUM_THREADS": "1", "PATH": path},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_two_processes_zero2_resumes_and_matches_ddp(stack, tmp_path):
    """DDP and DeepSpeed ZeRO-2 over two processes average gradients across ranks (they
    agree with each other), a ZeRO-2 run stopped at its time limit resumes from its
    sharded checkpoint, both end on the same weights, and so does ZeRO-2 on two "nodes"
    started the way the train rule starts them (srun, one launch per node)."""
    ddp = _launch(stack, tmp_path, "ddp_single_node.yaml", "ddp")
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    env = {"STANCE_JOB_END_TIME": str(time.time())}  # at its limit: stop after step 1
    stopped = _launch(stack, tmp_path, "zero2_single_node.yaml", "zero2", env)
    assert stopped.returncode != 0 and "before the job's time limit" in stopped.stderr
    assert not (tmp_path / "zero2" / "transformer").exists()
    resumed = _launch(stack, tmp_path, "zero2_single_node.yaml", "zero2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "DEEPSPEED" in resumed.stderr and "resumed" in resumed.stderr
    nodes = _launch(stack, tmp_path, "zero2_single_node.yaml", "nodes", nodes=2)
    assert nodes.returncode == 0, nodes.stderr[-3000:]
    assert nodes.stderr.count("2 process(es), DistributedType.DEEPSPEED") == 2  # one per node
    reference = _weights(tmp_path / "ddp")
    for other in ("zero2", "nodes"):
        weights = _weights(tmp_path / other)
        assert weights.keys() == reference.keys()
        assert max(float((reference[k] - weights[k]).abs().max()) for k in weights) < 1e-5
    initial = load_file(str(next(stack[1].glob("transformer/*.safetensors"))))
    assert any(not torch.equal(reference[k], initial[k]) for k in initial if k in reference)


VARIANT_KINDS = {
    "backbone": {"aux": "none", "cue_mode": "none"},
    "map2d": {"aux": "none", "cue_mode": "map2d"},
    "lowres_map": {"aux": "none", "cue_mode": "lowres_map"},
    "rgb_only": {"aux": "none", "cue_mode": "dense_rope", "motion_tokens": 1},
    "rgb_seg": {"aux": "seg", "cue_mode": "dense_rope", "motion_tokens": 4},
}


@pytest.mark.slow
@pytest.mark.parametrize("launch_config", ["ddp_single_node.yaml", "zero2_single_node.yaml"])
def test_every_variant_kind_trains_under_every_launch_config(stack, tmp_path, launch_config):
    """Two CPU processes, two steps, for each kind of variant: those that leave new modules
    unused (no cues: the cue tokenizer; no aux: the domain embedding) used to stop DDP at
    step 2 waiting for gradients; rgb_only selects 1 of several cue sites (random subset)."""
    for name, variant in VARIANT_KINDS.items():
        done = _launch(stack, tmp_path, launch_config, name, variant=variant, steps=2)
        assert done.returncode == 0, f"{name}: {done.stderr[-3000:]}"
        assert "2 process(es)" in done.stderr
        losses = (tmp_path / name / "losses.csv").read_text().splitlines()[1:]
        assert [int(line.split(",")[0]) for line in losses] == [1, 2], name


@pytest.mark.slow
@pytest.mark.parametrize("launch_config", ["zero2_single_node.yaml", "ddp_single_node.yaml"])
def test_the_shipped_bf16_launch_configs_train(stack, tmp_path, launch_config):
    """The launch configs exactly as shipped (bf16): DeepSpeed casts the weights to bf16
    but not the float32 cache tensors, DDP autocasts. Both train real steps on an RGB+Depth
    variant with finite losses close to a float32 run's."""
    losses = {}
    for precision in ("bf16", "no"):
        name = f"{precision}-{launch_config.split('_')[0]}"
        done = _launch(stack, tmp_path, launch_config, name, steps=3, precision=precision)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"mixed precision {precision}" in done.stderr
        lines = (tmp_path / name / "losses.csv").read_text().splitlines()[1:]
        losses[precision] = np.array([[float(x) for x in line.split(",")[1:]] for line in lines])
    assert losses["bf16"].shape == (3, 3) and np.isfinite(losses["bf16"]).all()
    np.testing.assert_allclose(losses["bf16"], losses["no"], rtol=0.05)


@pytest.mark.slow
def test_pretraining_runs_as_two_cpu_processes_from_the_rules_command(stack, tmp_path):
    """The pretraining rule's command with pretrain_cpu_processes 2: two ranks of one thread
    each (DDP over gloo), each drawing half of micro_batch, train the backbone."""
    import shlex

    from stance.train import launch

    train = {
        **as_dict(SETTINGS),
        "micro_batch": 2,
        "pretrain_steps": 2,
        "pretrain_cpu_processes": 2,
    }
    passed = pretraining.passed_settings(train, ["variants"])
    command = _fit(stack, tmp_path / "runs", tmp_path / "pre", steps=2)
    command[2] = "pretrain"
    for flag in ("--cues", "--variant"):
        del command[command.index(flag) : command.index(flag) + 2]
    command[command.index("--settings") + 1] = json.dumps(passed)
    prefix = launch.pretrain_command_prefix(config.section_settings("train", train))
    done = subprocess.run(
        ["bash", "-c", f"{prefix} {shlex.join(command[1:])}"],
        env={  # as Snakemake starts a 2-thread job
            **os.environ,
            **dict.fromkeys(launch.THREAD_VARIABLES, "2"),
            "PATH": f"{BIN}:{os.environ['PATH']}",
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in done.stderr
    losses = (tmp_path / "pre" / "losses.csv").read_text().splitlines()[1:]
    assert [int(line.split(",")[0]) for line in losses] == [1, 2]
    record = json.loads((tmp_path / "pre" / "train.resolved.json").read_text())
    assert record["steps"] == 2


@pytest.mark.slow
def test_pretrain_then_fine_tune_from_the_command_line(stack, tmp_path):
    """`stance train pretrain` (no cue stores read) then `stance train fit --init`: the
    variant starts from the backbone's weights and records where it started."""
    pretrain = _fit(stack, tmp_path / "runs", tmp_path / "pre", steps=2, pretrain_steps=2)
    pretrain[2] = "pretrain"
    cues = pretrain.index("--cues")
    del pretrain[cues : cues + 2]
    variant = pretrain.index("--variant")
    del pretrain[variant : variant + 2]
    done = subprocess.run(pretrain, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "pre" / "train.resolved.json").read_text())
    assert record["steps"] == 2 and list(record["variant"]) == ["pretrained"]
    assert record["variant"]["pretrained"]["cue_mode"] == "none"
    fit = _fit(stack, tmp_path / "runs", tmp_path / "tuned", steps=2, pretrain_steps=2)
    refused = subprocess.run(fit, capture_output=True, text=True)
    assert refused.returncode != 0 and "--init" in refused.stderr
    done = subprocess.run([*fit, "--init", str(tmp_path / "pre")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"STANCE transformer from {tmp_path / 'pre'}" in done.stderr
    record = json.loads((tmp_path / "tuned" / "train.resolved.json").read_text())
    assert record["init"] == str(tmp_path / "pre")


def write_validation_clip(root, size=32, frames=9):
    """A validation clip: a render store whose one instance (rows 8-15, as the cue store
    of helpers.write_cue_store) moves 1 px per frame to the right, and its cue store."""
    from helpers import clip_arrays

    from stance.render import store as clip_store

    (root / "render").mkdir(parents=True)
    (root / "cues").mkdir()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8)
    seg = np.zeros((frames, size, size), np.uint16)
    seg[:, 8:16] = 1
    tracks = {
        name: np.zeros((1, frames, *tail), dtype)
        for name, (dtype, tail) in clip_store.TRACKS.items()
    }
    tracks["image_positions"][0] = np.stack([10.0 + np.arange(frames), np.full(frames, 12.0)], -1)
    attrs = {"clip_id": "val-00000001", "instances": [{"mass": 1.0, "dynamic": True}]}
    attrs["render"] = {"fps": 12}
    clip_store.write_clip(
        root / "render" / "val-00000001.zarr", clip_arrays(rgb, seg), tracks, attrs
    )
    write_cue_store(root / "cues" / "val-00000001.zarr", size)
    return root / "render", root / "cues"


def test_the_probe_scores_cue_control_of_a_model_in_training(stack, tmp_path):
    """The validation probe samples a real (tiny) model with the cues as given and
    reversed; without cues the reversed video is its own: response exactly 0."""
    from stance.generate.validation import CueControlProbe

    _, model_dir, _ = stack
    render, cues = write_validation_clip(tmp_path)
    settings = dataclasses.replace(SETTINGS, validate_every=2, validate_sampling_steps=2)
    probe = CueControlProbe(str(model_dir), [render], [cues], settings, False)
    cued = weights.stance_transformer(str(model_dir), VARIANT, False)
    row = probe(cued, SETTINGS_VARIANT, 7)
    assert row["step"] == 7 and row["instances"] == 1
    assert np.isfinite([row["response"], row["gain"], row["follows"]]).all()
    assert cued.training  # left in training mode
    plain = Variant(aux="none", cue_mode="none", motion_tokens=1, seed=None)
    backbone = weights.stance_transformer(str(model_dir), as_dict(plain), False)
    row = probe(backbone, plain, 7)
    assert row["response"] == 0.0 and row["follows"] == 0.0
    with pytest.raises(UserError, match="validate_every"):
        CueControlProbe(str(model_dir), [render], [tmp_path], settings, False)


@pytest.mark.slow
def test_a_validating_run_logs_cue_control_at_its_cadence(stack, tmp_path):
    render, cues = write_validation_clip(tmp_path / "val")
    extra = {"validate_every": 2, "validate_sampling_steps": 2}
    fit = _fit(stack, tmp_path / "runs", tmp_path / "out", steps=3, **extra)
    fit += ["--val-render", str(render), "--val-cues", str(cues)]
    done = subprocess.run(fit, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = (tmp_path / "out" / "validation.csv").read_text().splitlines()
    assert lines[0] == "step,response,gain,follows,instances"
    assert [int(line.split(",")[0]) for line in lines[1:]] == [2, 3]
    assert (tmp_path / "out" / "validation.png").stat().st_size > 5_000


@pytest.mark.slow
def test_the_validation_probe_leaves_the_weights_as_they_would_be(stack, tmp_path):
    """The probe samples with its own generators and hands the model back in training mode:
    a validating run ends with the weights of one that does not validate, which is why the
    training rule leaves the probe's code (sampling, tracking) out of its code hash."""
    render, cues = write_validation_clip(tmp_path / "val")
    probe = {"validate_every": 2, "validate_sampling_steps": 2}
    validating = _fit(stack, tmp_path / "runs_v", tmp_path / "validating", steps=4, **probe)
    validating += ["--val-render", str(render), "--val-cues", str(cues)]
    for args in (validating, _fit(stack, tmp_path / "runs_p", tmp_path / "plain", steps=4)):
        done = subprocess.run(args, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "validating" / "validation.csv").exists()
    plain, watched = _weights(tmp_path / "plain"), _weights(tmp_path / "validating")
    assert plain.keys() == watched.keys()
    assert all(torch.equal(plain[k], watched[k]) for k in plain)
