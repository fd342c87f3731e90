"""Kubric-nightly on Blender 4.2 (bpy wheel) without TensorFlow.

This is the only module that imports bpy or kubric. `load()` imports them once and applies
these fixes for kubric-nightly on Blender 4.2:
- kubric imports `tensorflow` only for `tf.io.gfile.GFile` / `tf.io.gfile.copy`: a small
  real implementation on the local filesystem is placed in sys.modules while kubric is
  imported, then removed (etils.epath probes for tensorflow and breaks on a stand-in);
- Principled BSDF inputs renamed in Blender 4.0 (Specular, Transmission, Emission);
- the object-coordinates AOV needs `aov_name`, not only a node name;
- OBJ import moved from `import_scene.obj` (removed in 4.0) and `use_auto_smooth` was
  removed in 4.1: file-based objects are built straight from the OBJ's vertices with
  trimesh, exactly the geometry PyBullet loads (no importer axis conversion to get wrong).
"""

from __future__ import annotations

import os
import shutil
import sys
import types
from functools import cache


def _gfile_module() -> types.ModuleType:
    """`tensorflow` with just `io.gfile.GFile` and `io.gfile.copy`, on local files."""

    def copy(src, dst, overwrite=False):
        if os.path.exists(dst) and not overwrite:
            raise FileExistsError(dst)
        shutil.copyfile(src, dst)

    gfile = types.SimpleNamespace(
        GFile=open,
        copy=copy,
        exists=os.path.exists,
        makedirs=lambda p: os.makedirs(p, exist_ok=True),
    )
    module = types.ModuleType("tensorflow")
    module.io = types.SimpleNamespace(gfile=gfile)
    return module


@cache
def load():
    """Import kubric with the Blender 4.2 fixes applied; returns the kubric module."""
    had_tf = "tensorflow" in sys.modules
    if not had_tf:
        sys.modules["tensorflow"] = _gfile_module()
    try:
        import bpy  # noqa: F401  (imported first: kubric's safeimport expects it)
        import kubric as kb
        from kubric.renderer import blender as kb_blender
        from kubric.renderer import blender_utils
        from kubric.simulator import pybullet as kb_pybullet  # noqa: F401
    finally:
        if not had_tf:
            del sys.modules["tensorflow"]
    _patch_principled_bsdf(kb, kb_blender, blender_utils)
    _patch_object_coordinates_aov(blender_utils)
    _patch_file_based_objects(kb, kb_blender, blender_utils)
    return kb


def _patch_principled_bsdf(kb, kb_blender, blender_utils) -> None:
    import bpy

    setter, keyframer = kb_blender.AttributeSetter, kb_blender.KeyframeSetter

    @kb_blender.Blender.add_asset.register(kb.PrincipledBSDFMaterial)
    @blender_utils.prepare_blender_object
    def _add_principled(self, obj):
        mat = bpy.data.materials.new(obj.uid)
        mat.use_nodes = True
        bsdf = mat.node_tree.nodes["Principled BSDF"]
        # kubric trait -> Blender 4 input name
        inputs = {
            "color": "Base Color",
            "roughness": "Roughness",
            "metallic": "Metallic",
            "specular": "Specular IOR Level",
            "ior": "IOR",
            "transmission": "Transmission Weight",
            "emission": "Emission Color",
        }
        for trait, name in inputs.items():
            socket = bsdf.inputs[name]
            obj.observe(setter(socket, "default_value"), trait)
            obj.observe(keyframer(socket, "default_value"), trait, type="keyframe")
        bsdf.inputs["Emission Strength"].default_value = 1.0
        return mat


def _patch_object_coordinates_aov(blender_utils) -> None:
    original = blender_utils.add_coordinate_material
    if getattr(original, "_stance_patched", False):
        return

    def add_coordinate_material():
        mat = original()
        for node in mat.node_tree.nodes:
            if node.bl_idname == "ShaderNodeOutputAOV":
                node.aov_name = "ObjectCoordinates"
        return mat

    add_coordinate_material._stance_patched = True
    blender_utils.add_coordinate_material = add_coordinate_material


def _patch_file_based_objects(kb, kb_blender, blender_utils) -> None:
    import bpy
    import trimesh

    setter, keyframer = kb_blender.AttributeSetter, kb_blender.KeyframeSetter

    @kb_blender.Blender.add_asset.register(kb.FileBasedObject)
    @blender_utils.prepare_blender_object
    def _add_file_based(self, obj):
        if obj.render_filename is None:
            return None
        mesh = trimesh.load(obj.render_filename, force="mesh", process=False)
        data = bpy.data.meshes.new(obj.uid)
        data.from_pydata(mesh.vertices.tolist(), [], mesh.faces.tolist())
        data.update()
        if obj.metadata.get("smooth", False):
            data.shade_smooth()
        blender_obj = bpy.data.objects.new(obj.uid, data)
        kb_blender.register_object3d_setters(obj, blender_obj)
        obj.observe(
            setter(blender_obj, "active_material", converter=self._convert_to_blender_object),
            "material",
        )
        obj.observe(setter(blender_obj, "scale"), "scale")
        obj.observe(keyframer(blender_obj, "scale"), "scale", type="keyframe")
        return blender_obj


class CyclesTimer:
    """Seconds spent inside Blender renders (render_pre -> render_post handlers)."""

    def __init__(self):
        self.seconds = 0.0
        self._start = None

    def __enter__(self):
        import time

        import bpy
        from bpy.app.handlers import persistent

        @persistent  # kubric resets Blender between clips; keep the handlers registered
        def pre(*_):
            self._start = time.perf_counter()

        @persistent
        def post(*_):
            if self._start is not None:
                self.seconds += time.perf_counter() - self._start
                self._start = None

        self._handlers = (pre, post)
        bpy.app.handlers.render_pre.append(pre)
        bpy.app.handlers.render_post.append(post)
        return self

    def __exit__(self, *exc):
        import bpy

        bpy.app.handlers.render_pre.remove(self._handlers[0])
        bpy.app.handlers.render_post.remove(self._handlers[1])


def read_rendered_layers(renderer, from_dir, return_layers) -> dict:
    """Drop-in for `Blender.postprocess` that reads each frame's files once, in C.

    kubric reads every EXR channel with a separate call and decodes the RGBA PNG in pure
    Python (pypng): about 0.1 s per 128x128 frame, as much as Cycles itself at 16 spp.
    Here each EXR is read whole by OpenEXR's C++ reader and the PNG by Pillow; the same
    source layers are then handed to kubric's own post-processors, so results are equal.
    """
    from collections import defaultdict
    from pathlib import Path

    import numpy as np
    import OpenEXR
    from PIL import Image

    from_dir = Path(from_dir)
    stacks = defaultdict(list)
    for exr_path in sorted((from_dir / "exr").glob("*.exr")):
        with Image.open(from_dir / "images" / f"{exr_path.stem}.png") as png:
            source = {"rgba": np.asarray(png.convert("RGBA"))}
        with OpenEXR.File(str(exr_path), separate_channels=True) as exr:
            channels = {name: ch.pixels for name, ch in exr.channels().items()}
        source.update(_source_layers(channels, np))
        for key in return_layers:
            stacks[key].append(renderer.post_processors[key](source, renderer.scene))
    return {key: np.stack(frames, axis=0) for key, frames in stacks.items()}


def _source_layers(channels, np) -> dict:
    """The subset of kubric's `get_render_layers_from_exr` output the store needs."""
    out = {}
    if "Depth.V" in channels:
        out["depth"] = channels["Depth.V"][..., None].astype(np.float32)
    if "Vector.R" in channels:
        r, g, b, a = (channels[f"Vector.{c}"].astype(np.float32) for c in "RGBA")
        # Blender stores (-d_col, d_row) per direction; kubric uses (d_row, d_col).
        out["backward_flow"] = np.stack([g, -r], axis=-1)
        out["forward_flow"] = np.stack([a, -b], axis=-1)
    crypto = sorted({n.split(".")[0] for n in channels if n.lower().startswith("cryptoobject")})
    if crypto:
        names = [f"{layer}.{c}" for layer in crypto for c in "RB"]
        ids = np.stack([channels[n] for n in names], axis=-1).astype(np.float32)
        out["segmentation_indices"] = ids.view(np.uint32)  # hashes stored as float bits
    return out
