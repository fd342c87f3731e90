"""Depth stage (`stance depth`, rules/depth.smk, results/depth/): Depth-Anything-V2
monocular disparity for every frame of every rendered clip.

Modules: `model` (loading hub ids or folders, the tiny offline model), `shard` (the job),
`store` (the store format), `bench` (`stance bench depth`), `cli`.
"""
