"""Train stage (`stance train`, rules/train.smk, results/train/: cache/, runs/ and one folder
per variant): STANCE fine-tuning of CogVideoX-1.5 image-to-video (diffusers).

Modules: `encode` (the VAE/T5 cache: `stance train encode`), `model` (the transformer
with cue tokens, Dense RoPE and the auxiliary stream), `tiny` (an offline random-weight
stack built from real configs), `components` (loading hub ids or local folders),
`objective` (the I2V v-prediction loss), `trainer` (accelerate loop, checkpoints, resume:
`stance train fit`), `carry` (a training set packed for another machine). Generation is
its own stage (`stance.generate`).
"""
