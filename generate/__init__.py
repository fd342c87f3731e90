"""Generation stage (`stance generate`, rules/generate.smk, results/generate/): sample
test clips, or a user's hint cue store, with a trained variant.

Modules: `pipeline` (the diffusers image-to-video pipeline with cues and the auxiliary
stream), `shard` (the job: load a trained variant, sample, write videos), `cli`.
"""
