"""Render stage (`stance render`, rules/render.smk, results/render/): Kubric
rigid-collision clips (PyBullet physics + Blender Cycles).

Modules: `scene` samples scene specifications in plain Python (no Blender); `kubric_compat`
is the only module that imports bpy/kubric; `worker` builds, simulates and renders a
scene; `store` defines the clip store format; `shard` renders a shard of clips.
"""
