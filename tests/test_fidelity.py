"""Model fidelity: training builds exactly what sampling feeds the model (image condition,
auxiliary keyframe, cues), random draws are device-correct, cue guidance and dropout,
per-step noise augmentation, cue-grid checks, the LoRA scale and the generation dtype."""

import dataclasses

import numpy as np
import pytest
import torch
from helpers import KEY, make_pipe

from stance import config
from stance.generate import sampling as generate
from stance.generate.pipeline import guidance_branches, guide
from stance.train import aux_frames, components, encode, objective, tiny, trainer, weights
from stance.train.model import StanceTransformer, select_sites

SETTINGS = config.defaults().train


class Captured(Exception):
    """Raised by a spied transformer once it has seen its inputs."""


def spy(model, monkeypatch) -> dict:
    seen = {}

    def forward(*args, **kwargs):
        seen.update(kwargs)
        raise Captured

    monkeypatch.setattr(model, "forward", forward)
    return seen


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny.make_tiny(tmp_path_factory.mktemp("fidelity") / "tiny")


def training_batch(image_latents, aux=False):
    g = torch.Generator().manual_seed(1)
    batch = {
        "video_latents": torch.randn(1, 3, 4, 4, 4, generator=g),  # 9 frames -> 3 latent
        "image_latents": image_latents,
        "prompt_embeds": torch.randn(1, 32, 32, generator=g),
    }
    if aux:
        batch["aux_latents"] = torch.randn(1, 3, 4, 4, 4, generator=g)
        batch["aux_image_latents"] = torch.randn(1, 1, 4, 4, 4, generator=g)
    return batch


def test_training_and_sampling_build_the_same_image_condition(model_dir, monkeypatch):
    pipe = make_pipe(model_dir)
    seen = spy(pipe.transformer, monkeypatch)
    with pytest.raises(Captured):
        pipe.generate(KEY, None, "a cube", 9, 2, 1.0, seed=0)
    sampled = seen["hidden_states"][:, :, 4:]
    # the same keyframe latent (same seed, as prepare_latents draws it first), trained on
    raw = pipe.encode_keyframe(KEY, torch.Generator().manual_seed(0), torch.float32)
    with pytest.raises(Captured):
        objective.training_step(
            pipe.transformer, pipe.scheduler, training_batch(raw), pipe.vae.config, SETTINGS
        )
    trained = seen["hidden_states"][:, :, 4:]
    assert trained.shape == sampled.shape == (1, 4, 4, 4, 4)
    assert torch.equal(trained, sampled)
    assert trained[:, 0].abs().sum() > 0 and not trained[:, 1:].any()  # keyframe at 0 only


def test_conditioning_pads_to_the_temporal_patch():
    key = torch.ones(2, 1, 4, 3, 3)
    assert objective.conditioning_latents(key, 3, 2).shape == (2, 4, 4, 3, 3)
    assert objective.conditioning_latents(key, 4, 2).shape == (2, 4, 4, 3, 3)
    assert objective.conditioning_latents(key, 3, None).shape == (2, 3, 4, 3, 3)


class OtherDeviceGenerator:
    """A generator made for the training device ("cuda:0") whose draws run on the CPU
    here: the spies below check that every draw asks for the generator's own device."""

    def __init__(self, seed: int):
        self.inner = torch.Generator().manual_seed(seed)
        self.device = torch.device("cuda", 0)


def spy_random_calls(monkeypatch) -> list[str]:
    calls = []
    for name in ("randn", "rand", "randint", "randperm"):
        real = getattr(torch, name)

        def wrapped(*args, generator=None, device=None, _real=real, _name=name, **kwargs):
            if isinstance(generator, OtherDeviceGenerator):
                assert device is not None and torch.device(device) == generator.device, (
                    f"torch.{_name} on {device} with a generator on {generator.device}"
                )
                calls.append(_name)
                return _real(*args, generator=generator.inner, device="cpu", **kwargs)
            return _real(*args, generator=generator, device=device, **kwargs)

        monkeypatch.setattr(torch, name, wrapped)
    return calls


def test_site_selection_draws_on_the_generators_device(monkeypatch):
    calls = spy_random_calls(monkeypatch)
    active = torch.ones(2, 12, dtype=torch.bool)  # more sites than motion tokens
    idx, has = select_sites(active, 4, training=True, generator=OtherDeviceGenerator(0))
    assert idx.device.type == "cpu" and has.all() and calls == ["randperm", "randperm"]
    again, _ = select_sites(active, 4, training=True, generator=OtherDeviceGenerator(0))
    assert torch.equal(idx, again)  # deterministic


def test_every_training_draw_uses_a_generator_on_its_own_device(model_dir, monkeypatch):
    """A whole step (per-step keyframe noise, cue dropout, timesteps, noise, Dense RoPE
    site selection with more cue sites than motion tokens) with tensors on the CPU and a
    generator made for another device."""
    pipe = make_pipe(model_dir, motion_tokens=2)
    pipe.transformer.train()
    batch = training_batch(None, aux=True)
    del batch["image_latents"], batch["aux_image_latents"]
    batch["image_latents_keyframe"] = torch.from_numpy(KEY)[None]
    batch["aux_image_latents_keyframe"] = torch.from_numpy(KEY)[None]
    batch["cues"] = torch.ones(1, 4, 32, 32)  # 4 active sites > 2 motion tokens
    calls = spy_random_calls(monkeypatch)
    generator = OtherDeviceGenerator(3)
    trainer.encode_keyframes(pipe.vae, batch, generator)
    settings = dataclasses.replace(SETTINGS, cue_dropout=0.5)
    terms = objective.training_step(
        pipe.transformer, pipe.scheduler, batch, pipe.vae.config, settings, generator, "depth"
    )
    assert torch.isfinite(terms["rgb"]) and torch.isfinite(terms["aux"])
    assert {"randn", "rand", "randint", "randperm"} <= set(calls)


def test_the_auxiliary_stream_is_conditioned_on_its_own_keyframe(model_dir, monkeypatch):
    pipe = make_pipe(model_dir)
    batch = training_batch(torch.randn(1, 1, 4, 4, 4), aux=True)
    seen = spy(pipe.transformer, monkeypatch)
    scale = objective.image_latent_scale(pipe.vae.config, "pipeline")
    for choice, source in (("aux", "aux_image_latents"), ("rgb", "image_latents")):
        with pytest.raises(Captured):
            objective.training_step(
                pipe.transformer,
                pipe.scheduler,
                batch,
                pipe.vae.config,
                dataclasses.replace(SETTINGS, aux_keyframe=choice),
                aux="depth",
            )
        expected = objective.conditioning_latents(batch[source] * scale, 3, 2)
        assert torch.equal(seen["aux_hidden_states"][:, :, 4:], expected), choice
    assert SETTINGS.aux_keyframe == "aux"  # the authors' behaviour is the default


def test_sampling_conditions_the_aux_stream_on_the_given_keyframe(model_dir, monkeypatch):
    pipe = make_pipe(model_dir)
    seen = spy(pipe.transformer, monkeypatch)
    aux_key = aux_frames.depth_keyframe(np.tile(np.arange(32.0), (32, 1)))
    with pytest.raises(Captured):
        pipe.generate(KEY, None, "a cube", 9, 2, 1.0, seed=0, aux=True, aux_keyframe=aux_key)
    rgb_condition = seen["hidden_states"][:, :, 4:]
    aux_condition = seen["aux_hidden_states"][:, :, 4:]
    assert not torch.equal(rgb_condition, aux_condition)
    assert not aux_condition[:, 1:].any()
    with pytest.raises(Captured):
        pipe.generate(KEY, None, "a cube", 9, 2, 1.0, seed=0, aux=True)
    assert torch.equal(seen["aux_hidden_states"][:, :, 4:], rgb_condition)


def test_depth_keyframe_from_any_affine_disparity_matches_the_training_video():
    depth = np.random.default_rng(0).uniform(2.0, 9.0, (3, 16, 16))
    video = aux_frames.depth_video(depth)
    for a, b in ((1.0, 0.0), (37.0, 5.0), (0.01, -3.0)):
        rebuilt = aux_frames.depth_keyframe(a / depth[0] + b)
        assert np.abs(rebuilt.astype(int) - video[0].astype(int)).max() <= 1
    labels = np.array([[0, 1], [2, 2]], np.uint16)
    assert np.array_equal(aux_frames.keyframe("seg", labels, None), aux_frames.palette(labels))
    with pytest.raises(aux_frames.UserError, match="depth: <image>"):
        aux_frames.keyframe("depth", labels, None)


def test_guidance_combines_branches_as_documented():
    u, t, c = torch.tensor(1.0), torch.tensor(3.0), torch.tensor(7.0)
    assert guidance_branches(6.0, None, True) == [(False, False), (True, True)]
    assert guide([u, c], 6.0, None, True) == 1 + 6 * (7 - 1)  # the authors': joint branch
    assert guidance_branches(6.0, 2.0, True) == [(False, False), (True, False), (True, True)]
    assert guide([u, t, c], 6.0, 2.0, True) == 1 + 6 * (3 - 1) + 2 * (7 - 3)
    assert guidance_branches(1.0, 2.0, True) == [(True, False), (True, True)]
    assert guide([t, c], 1.0, 2.0, True) == 3 + 2 * (7 - 3)
    assert guidance_branches(1.0, None, True) == [(True, True)]
    assert guidance_branches(6.0, 2.0, False) == [(False, False), (True, True)]  # no cues


def test_the_unconditional_branch_drops_text_and_cues(model_dir, monkeypatch):
    pipe = make_pipe(model_dir)
    seen = spy(pipe.transformer, monkeypatch)
    cues = np.ones((32, 32, 4), np.float32)
    with pytest.raises(Captured):
        pipe.generate(KEY, cues, "a cube", 9, 2, 6.0, seed=0)
    assert not seen["cues"][0].any() and seen["cues"][1].eq(1).all()
    negative, positive = seen["encoder_hidden_states"]
    assert not torch.equal(negative, positive)


def test_cue_guidance_scales_only_the_cue_direction(model_dir):
    pipe = make_pipe(model_dir)
    cues = np.zeros((32, 32, 4), np.float32)
    cues[8:24, 8:24] = (2.0, -1.0, 0.1, 0.5)

    def video(cues, **kwargs):
        return pipe.generate(KEY, cues, "a cube", 9, 2, 1.0, seed=0, **kwargs).video

    def close(a, b):
        return np.abs(a.astype(int) - b.astype(int)).max() <= 1

    # scale 0 leaves the cue-free branch (cues dropped = a zero cue map, as in training)
    assert close(video(cues, cue_guidance=0.0), video(np.zeros_like(cues)))
    cued = video(cues)
    assert close(video(cues, cue_guidance=1.0), cued)  # scale 1 = plain conditioning
    guided = video(cues, cue_guidance=4.0)
    assert not close(guided, cued)
    # two steps, at timesteps 999 and 499: from t >= 1000 none is guided, from 500 the
    # first only, from 0 both
    assert close(video(cues, cue_guidance=4.0, cue_guidance_above=1.0), cued)
    first_only = video(cues, cue_guidance=4.0, cue_guidance_above=0.5)
    assert not close(first_only, cued) and not close(first_only, guided)
    assert close(video(cues, cue_guidance=4.0, cue_guidance_above=0.0), guided)


def test_cue_guidance_applies_only_from_its_timestep():
    from stance.generate.pipeline import Guidance

    text, full = torch.zeros(1), torch.ones(1)
    guidance = Guidance([(True, False), (True, True)], 1.0, 3.0, True, cue_from=600.0)
    assert guidance.combine([text, full], 999).item() == 3.0  # text + 3 (full - text)
    assert guidance.combine([text, full], 600).item() == 3.0
    assert guidance.combine([text, full], 599).item() == 1.0  # unguided: the cued branch


def test_the_text_only_branch_runs_only_where_the_cue_guidance_reads_it(model_dir, monkeypatch):
    from stance.generate.pipeline import Guidance

    separate = Guidance([(True, False), (True, True)], 1.0, 3.0, True, cue_from=600.0)
    assert separate.active(600) == [0, 1] and separate.active(599) == [1]
    assert Guidance([(True, False), (True, True)], 1.0, 1.0, True).active(999) == [1]
    with_text = Guidance([(False, False), (True, False), (True, True)], 6.0, 3.0, True, 600.0)
    assert with_text.active(0) == [0, 1, 2]  # u + s (t - u) + (c - t) reads all three
    pipe = make_pipe(model_dir)
    batches, forward = [], pipe.transformer.forward

    def counted(*args, **kwargs):
        batches.append((len(kwargs["hidden_states"]), kwargs["cues"][:, 0, 0, 0].tolist()))
        return forward(*args, **kwargs)

    monkeypatch.setattr(pipe.transformer, "forward", counted)
    cues = np.ones((32, 32, 4), np.float32)
    for aux in (False, True):
        batches.clear()
        pipe.generate(
            KEY, cues, "a cube", 9, 2, 1.0, 0, aux=aux, cue_guidance=4.0, cue_guidance_above=0.5
        )
        # timestep 999 guided: cue-free and cued branches; timestep 499: the cued one alone
        assert batches == [(2, [0.0, 1.0]), (1, [1.0])]


def test_sampling_reads_only_the_keys_a_sampling_rule_passes():
    """The Physics-IQ generation rule passes config.SAMPLING_KEYS (and the seed as a flag):
    sampling must read nothing else of the generate section."""
    import json
    from types import SimpleNamespace

    from stance.generate import sampling
    from stance.settings import Variant, replace

    class RecordingPipe:
        transformer = SimpleNamespace(config=SimpleNamespace(cue_mode="dense_rope"))

        def generate(self, *args, **kwargs):
            return args, kwargs

    defaults = config.defaults()
    values = {k: getattr(defaults.generate, k) for k in config.SAMPLING_KEYS}
    values.update(cue_guidance=3.0, cue_guidance_above=0.6, project_output_span=True)
    passed = replace(config.section_from_json("generate", json.dumps(values)), seed=7)
    cue = SimpleNamespace(cue=np.zeros((1, 8, 8, 4), np.float32), keyframe=np.zeros((8, 8, 3)))
    info = sampling.Trained(Variant("none", "dense_rope", 4, None), defaults.train)
    args, kwargs = sampling.sample(
        RecordingPipe(), cue, prompt="a cube", frames=9, settings=passed, max_text=8, info=info
    )
    assert args[-1] == 7 and kwargs["cue_guidance"] == 3.0
    assert kwargs["cue_guidance_above"] == 0.6
    assert kwargs["project_output_span"] is True


def test_cue_dropout_zeroes_whole_samples():
    cues = torch.ones(1000, 4, 2, 2)
    g = torch.Generator().manual_seed(0)
    assert objective.drop_cues(cues, 0.0, g) is cues
    assert not objective.drop_cues(cues, 1.0, g).any()
    dropped = objective.drop_cues(cues, 0.3, g)
    kept = dropped.flatten(1).all(1)
    assert torch.equal(kept, dropped.flatten(1).any(1))  # all or nothing per sample
    assert 0.25 < 1 - kept.float().mean() < 0.35


def test_keyframe_noise_is_redrawn_every_step(model_dir):
    vae = components.load_frozen(str(model_dir), False)["vae"]
    frames = {"image_latents": torch.from_numpy(KEY)[None]}
    draws_ = [
        encode.noisy_keyframe_latents(vae, frames, torch.Generator().manual_seed(s))
        for s in (0, 0, 1)
    ]
    assert torch.equal(draws_[0]["image_latents"], draws_[1]["image_latents"])
    assert not torch.equal(draws_[0]["image_latents"], draws_[2]["image_latents"])
    batch = {"video_latents": torch.zeros(1), "image_latents_keyframe": frames["image_latents"]}
    trainer.encode_keyframes(vae, batch, torch.Generator().manual_seed(0))
    assert set(batch) == {"video_latents", "image_latents"}
    assert batch["image_latents"].shape == (1, 1, 4, 4, 4)
    assert SETTINGS.image_noise == "per_step"


def test_a_cue_map_off_the_video_grid_is_a_clear_error(model_dir):
    model = weights.stance_transformer(str(model_dir), {"motion_tokens": 4}, False).eval()
    x = torch.randn(1, 4, 8, 4, 4)
    rope = objective.rotary_embedding(model.config, 32, 32, 4, "cpu")
    kwargs = dict(
        hidden_states=x,
        encoder_hidden_states=torch.randn(1, 7, 32),
        timestep=torch.tensor([10]),
        ofs=torch.full((1,), 2.0),
        image_rotary_emb=rope,
    )
    with torch.no_grad():
        model(**kwargs, cues=torch.ones(1, 4, 32, 32))
        with pytest.raises(ValueError, match="does not match the video"):
            model(**kwargs, cues=torch.ones(1, 4, 64, 64))


def test_the_cue_forward_honours_the_lora_scale(model_dir):
    from peft import LoraConfig

    torch.manual_seed(0)
    model = weights.stance_transformer(str(model_dir), {"motion_tokens": 4}, False).eval()
    model.add_adapter(
        LoraConfig(r=4, target_modules=["to_q", "to_k", "to_v"], init_lora_weights=False)
    )
    x = torch.randn(1, 4, 8, 4, 4)
    kwargs = dict(
        hidden_states=x,
        encoder_hidden_states=torch.randn(1, 7, 32),
        timestep=torch.tensor([10]),
        ofs=torch.full((1,), 2.0),
        image_rotary_emb=objective.rotary_embedding(model.config, 32, 32, 4, "cpu"),
        cues=torch.ones(1, 4, 32, 32),
    )
    with torch.no_grad():
        full = model(**kwargs).sample
        off = model(**kwargs, attention_kwargs={"scale": 0.0}).sample
        model.disable_adapters()
        base = model(**kwargs).sample
    assert not torch.allclose(full, base)
    torch.testing.assert_close(off, base)


def test_unused_parameters_are_frozen_per_variant(model_dir):
    base = vars(components.load_config(StanceTransformer, str(model_dir), "transformer"))

    def frozen(**options):
        return StanceTransformer.from_config({**base, **options}).freeze_unused()

    tokenizer = [f"cue_tokenizer.{k}.{p}" for k in (0, 2) for p in ("weight", "bias")]
    assert frozen(cue_mode="none") == sorted([*tokenizer, "domain_embedding"])
    assert frozen(cue_mode="dense_rope") == ["domain_embedding"]
    assert frozen(cue_mode="map2d", aux="seg") == []
    assert frozen(cue_mode="lowres_map") == ["domain_embedding"]


def test_generation_runs_in_the_training_dtype():
    assert generate.generation_dtype(
        dataclasses.replace(SETTINGS, mixed_precision="auto"), cuda=True
    ) == (torch.bfloat16)
    assert (
        generate.generation_dtype(dataclasses.replace(SETTINGS, mixed_precision="fp16"), True)
        == torch.float16
    )
    assert (
        generate.generation_dtype(dataclasses.replace(SETTINGS, mixed_precision="no"), True)
        == torch.float32
    )
    assert generate.generation_dtype(
        dataclasses.replace(SETTINGS, mixed_precision="bf16"), False
    ) == (torch.float32)


def test_the_tables_describe_training_and_guidance():
    from stance.evaluate.tables import method_note

    defaults = config.defaults()
    generate = dataclasses.replace(defaults.generate, guidance_scale=6.0)
    note = method_note(defaults.train, generate)
    assert "cue dropout 0" in note and "its own keyframe" in note
    assert "joint on text and cues" in note and "keyframe noise per step" in note
    assert "uniform timesteps" in note and "the plain diffusion loss" in note
    shifted = dataclasses.replace(
        defaults.train,
        timestep_sampling=dataclasses.replace(
            defaults.train.timestep_sampling, distribution="logit_normal", location=2.0
        ),
        motion_weighting=4.0,
    )
    note = method_note(shifted, generate)
    assert "logit-normal timesteps (location 2, scale 1)" in note
    assert "loss motion weighting 4" in note
    generate = dataclasses.replace(generate, cue_guidance=2.5)
    assert "text guidance 6 and a separate cue guidance 2.5" in method_note(
        defaults.train, generate
    )
    generate = dataclasses.replace(generate, cue_guidance_above=0.6)
    assert "cue guidance 2.5 on the steps with timestep t >= 0.6 T" in method_note(
        defaults.train, generate
    )
    assert "output layer's span" not in method_note(defaults.train, generate)
    generate = dataclasses.replace(generate, project_output_span=True)
    assert "latents kept in the output layer's span" in method_note(defaults.train, generate)


def test_dynamic_guidance_is_diffusers_schedule_and_changes_the_samples(model_dir):
    """The schedule equals the expression diffusers' I2V pipeline evaluates (read from its
    installed source), and sampling with it differs from a constant text scale."""
    import inspect
    import math
    import re

    from diffusers import CogVideoXImageToVideoPipeline

    from stance.generate.pipeline import dynamic_guidance

    source = inspect.getsource(CogVideoXImageToVideoPipeline.__call__)
    found = re.search(
        r"self\._guidance_scale = (1 \+ guidance_scale \* \(.*?\) / 2\s*\))", source, re.S
    )
    assert found, "diffusers' use_dynamic_cfg expression moved: re-check dynamic_guidance"
    expression = " ".join(found.group(1).split())
    for steps, t in ((50, 999), (50, 20), (20, 1), (4, 750)):
        scope = {
            "math": math,
            "guidance_scale": 6.0,
            "num_inference_steps": steps,
            "t": torch.tensor(t),
        }
        assert dynamic_guidance(6.0, steps, t) == pytest.approx(eval(expression, scope))
    pipe = make_pipe(model_dir)
    constant = pipe.generate(KEY, None, "a cube", 9, 2, 6.0, seed=0).video
    dynamic = pipe.generate(KEY, None, "a cube", 9, 2, 6.0, seed=0, use_dynamic_cfg=True).video
    assert not np.array_equal(constant, dynamic)
