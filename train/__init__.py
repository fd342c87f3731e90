"""STANCE model, training and generation on CogVideoX-1.5 image-to-video (diffusers).

Modules: `model` (the transformer with cue tokens, Dense RoPE and the auxiliary stream),
`tiny` (an offline random-weight stack built from real configs), `components` (loading
hub ids or local folders), `objective` (the I2V v-prediction loss), `trainer`
(accelerate loop, checkpoints, resume), `pipeline` (generation).
"""
