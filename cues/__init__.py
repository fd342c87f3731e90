"""Instance Cues stage (`stance cues`, rules/cues.smk, results/cues/): per-instance mean
flow painted inside each mask, a per-instance depth delta dz (2.5D) and mass, stored as
zarr (`store`); the same code rasterises a user's keyframe + masks + arrows + mass + dz
into cues (`hints`)."""
