"""Procedural meshes (trimesh) for shapes Kubric has no primitive for.

Kubric's asset buckets are unreachable offline, so cylinders, cones, capsules and tori are
generated here and saved as OBJ + URDF, the form `kb.FileBasedObject` loads into PyBullet.
Meshes are centred on their centre of mass, z up, at their final size (PyBullet only
supports uniform scaling). PyBullet collides a dynamic mesh as its convex hull, so the
torus gets a compound collision of convex ring segments instead of one (wrong) hull.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import trimesh

from stance.render.scene import CAPSULE_RADIUS, CONE_RADIUS, CYLINDER_RADIUS, TORUS_MINOR

SECTIONS = 48
TORUS_SEGMENTS = 12


def build_mesh(shape: str, size: float) -> trimesh.Trimesh:
    if shape == "cylinder":
        mesh = trimesh.creation.cylinder(
            radius=CYLINDER_RADIUS * size, height=2 * size, sections=SECTIONS
        )
    elif shape == "cone":
        mesh = trimesh.creation.cone(radius=CONE_RADIUS * size, height=2 * size, sections=SECTIONS)
    elif shape == "capsule":
        radius = CAPSULE_RADIUS * size
        mesh = trimesh.creation.capsule(
            height=2 * (size - radius), radius=radius, count=[SECTIONS, SECTIONS // 2]
        )
    elif shape == "torus":
        minor = TORUS_MINOR * size
        mesh = trimesh.creation.torus(
            major_radius=size - minor,
            minor_radius=minor,
            major_sections=SECTIONS,
            minor_sections=SECTIONS // 2,
        )
    else:
        raise ValueError(f"no procedural mesh for shape {shape!r}")
    mesh.apply_translation(-mesh.center_mass)
    return mesh


def _torus_segments(mesh: trimesh.Trimesh, count: int) -> list[trimesh.Trimesh]:
    """Convex hulls of angular slices of a torus (z axis through the hole)."""
    angles = np.arctan2(mesh.vertices[:, 1], mesh.vertices[:, 0])
    pieces = []
    for k in range(count):
        lo = -math.pi + 2 * math.pi * k / count
        hi = lo + 2 * math.pi / count
        pad = 1e-6
        keep = (angles >= lo - pad) & (angles <= hi + pad)
        pieces.append(trimesh.convex.convex_hull(mesh.vertices[keep]))
    return pieces


def write_urdf(
    shape: str, size: float, density: float, out_dir: Path, name: str
) -> tuple[Path, Path]:
    """Write `<name>.obj` (render + collision) and `<name>.urdf`; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mesh = build_mesh(shape, size)
    render_path = out_dir / f"{name}.obj"
    mesh.export(render_path)
    collision_files = [render_path.name]
    if shape == "torus":
        collision_files = []
        for k, piece in enumerate(_torus_segments(mesh, TORUS_SEGMENTS)):
            path = out_dir / f"{name}_collision{k:02d}.obj"
            piece.export(path)
            collision_files.append(path.name)
    mass = density * mesh.volume
    inertia = mesh.moment_inertia * density  # about the centre of mass (mesh is centred)
    collisions = "\n".join(
        f'    <collision><geometry><mesh filename="{f}" scale="1 1 1"/></geometry></collision>'
        for f in collision_files
    )
    urdf = f"""<?xml version="1.0"?>
<robot name="{name}">
  <link name="base">
    <inertial>
      <origin xyz="0 0 0"/>
      <mass value="{mass:.9g}"/>
      <inertia ixx="{inertia[0, 0]:.9g}" ixy="{inertia[0, 1]:.9g}" ixz="{inertia[0, 2]:.9g}"
               iyy="{inertia[1, 1]:.9g}" iyz="{inertia[1, 2]:.9g}" izz="{inertia[2, 2]:.9g}"/>
    </inertial>
    <visual><geometry><mesh filename="{render_path.name}" scale="1 1 1"/></geometry></visual>
{collisions}
  </link>
</robot>
"""
    urdf_path = out_dir / f"{name}.urdf"
    urdf_path.write_text(urdf)
    return render_path, urdf_path
