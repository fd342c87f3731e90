"""Shards partition each split's seeds: disjoint, complete, in order."""

import pytest

from stance import config, shards


def test_shards_cover_every_clip_once():
    data = config.section_settings(
        "data",
        {
            "clips_per_shard": 3,
            "splits": {
                "train": {"clips": 10, "seed_offset": 0},
                "val": {"clips": 0, "seed_offset": 50},
                "test": {"clips": 3, "seed_offset": 100},
            },
        },
    )
    assert shards.shards(data, "train") == ["00000", "00001", "00002", "00003"]
    seeds = [
        c.seed for s in shards.shards(data, "train") for c in shards.shard_clips(data, "train", s)
    ]
    assert seeds == list(range(10))
    assert shards.shards(data, "val") == []
    assert [c.clip_id for c in shards.shard_clips(data, "test", "00000")] == [
        "test-00000100",
        "test-00000101",
        "test-00000102",
    ]
    with pytest.raises(ValueError, match="does not exist"):
        shards.shard_clips(data, "test", "00001")


def test_paper_config_makes_about_a_thousand_render_jobs():
    from helpers import REPO

    data = config.load_settings(REPO / "configs/paper.yaml").data
    assert 900 <= sum(shards.num_shards(data, split) for split in data.splits) <= 2000
