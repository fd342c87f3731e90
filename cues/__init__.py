"""Instance Cues stage (planned, not yet in the DAG): per-instance mean flow painted inside
each mask, a per-instance depth delta dz (2.5D) and mass, stored as zarr; the same code
rasterises a user's keyframe + masks + arrows + mass + dz into cues."""
