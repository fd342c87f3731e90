"""The benchmark commands run and print their figures (tiny sizes; numbers not judged)."""

import pytest
from helpers import run_cli


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "--steps", "1", "--aux"], ["tokens/s", "peak memory"]),
        # 16 px, 5 frames (2 latent frames): 2 x 2 latent cells per frame on "small"'s
        # 2 x 2 patches, 4 x 4 on "smallfine"'s single cells, both 2 frames deep, and 2 x 4 x 4
        # on "smallwide"'s 1 x 1 x 1 patches; plus 8 motion and 32 text tokens
        (
            ["train", "--geometry", "small", "--size", "16", "--frames", "5", "--steps", "1"],
            ["1 x 44 tokens"],
        ),
        (
            ["train", "--geometry", "smallfine", "--size", "16", "--frames", "5", "--steps", "1"],
            ["1 x 56 tokens"],
        ),
        (
            ["train", "--geometry", "smallwide", "--size", "16", "--frames", "5", "--steps", "1"],
            ["1 x 72 tokens"],
        ),
        (
            ["train", "--steps", "1", "--precision", "autocast", "--cpu-attention", "bf16"],
            ["(autocast, ", "attention in bf16"],
        ),
        (
            ["train", "--steps", "1", "--precision", "autocast", "--cpu-attention", "float32"],
            ["attention in float32"],
        ),
        pytest.param(
            ["train", "--steps", "1", "--precision", "fp32", "--compile"],
            ["torch.compile True", "first step (compilation included)"],
            marks=pytest.mark.slow,  # compiles the tiny transformer: ~45 s on 2 cores
        ),
        (["startup"], ["weightless: imports", "eager: imports", "model built", "first step done"]),
        (
            ["evaluate", "--clips", "3", "--frames", "9", "--size", "64"],
            [
                "generated videos/s",
                "ms per generated video",
                "x CPU time",
                "identical per-view metrics",
            ],
        ),
        (
            ["evaluate", "--clips", "2", "--frames", "9", "--size", "64", "--runs", "2"],
            ["2 generated mp4 per clip", "metrics, scores per run"],
        ),
        (
            ["cues", "--frames", "5", "--size", "64", "--instances", "3"],
            ["cue kernel", "whole per-clip job"],
        ),
        (
            [
                "render",
                "--resolution",
                "32",
                "--frames",
                "4",
                "--spp",
                "1",
                "--clips",
                "1",
                "--threads",
                "1",
            ],
            ["clips/hour", "overhead", "kubric stock"],
        ),
        (
            ["scheduler", "--quick", "4", "--waiting", "2", "--seconds", "1"],
            ["stock timers", "one wake-up timer", "Snakemake CPU"],
        ),
    ],
)
def test_bench_prints_figures(args, expected):
    out = run_cli("bench", *args).stdout
    for fragment in expected:
        assert fragment in out, out
