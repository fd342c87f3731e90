"""Code hashes follow content and imports, never mtimes."""

import os
import shutil
import subprocess
import sys
import textwrap

from stance import provenance


def test_closure_follows_stance_imports_only():
    names = {name for name, _ in provenance.source_files("stance.render.cli")}
    assert {"stance.render.worker", "stance.render.scene", "stance.video", "stance.config"} <= names
    assert not any(n.startswith("stance.evaluate") for n in names)
    assert "stance.cli" not in names  # the dispatcher changes no stage's output


def test_report_hash_includes_the_render_store_it_reads():
    names = {n for n, _ in provenance.source_files("stance.report.dataset")}
    assert "stance.render.store" in names
    assert "stance.render.worker" not in names


def test_the_stance_model_code_reaches_training_but_not_encoding():
    """Editing the STANCE transformer retrains and resamples, but keeps the encoded latents
    (hours of VAE time at the paper's scale) and the tiny base stacks."""
    model, weights = "stance.train.model", "stance.train.weights"
    # the roots the training, pretraining and generation rules hash
    for root in ("stance.train.trainer", "stance.train.pretraining", "stance.generate.jobs"):
        assert model in {n for n, _ in provenance.source_files(root)}, root
    for root in ("stance.train.trainer", "stance.train.pretraining"):
        assert weights in {n for n, _ in provenance.source_files(root)}, root
    for root in ("stance.train.encode", "stance.train.tiny"):
        assert model not in {n for n, _ in provenance.source_files(root)}, root


def _hash_in_subprocess(root, module):
    code = f"from stance import provenance; print(provenance.code_hash({module!r}))"
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=root
    ).stdout.strip()


def test_hash_ignores_touch_and_sees_edits(tmp_path):
    # A throwaway `stance` namespace on PYTHONPATH that shadows nothing but itself.
    pkg = tmp_path / "stance"
    (pkg / "sub").mkdir(parents=True)
    shutil.copy(provenance.__file__, pkg / "provenance.py")
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text("X = 1\n")
    (pkg / "unrelated.py").write_text("Y = 1\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "main.py").write_text(
        textwrap.dedent("""
        def run():
            from stance.helper import X
            return X
    """)
    )
    before = _hash_in_subprocess(tmp_path, "stance.sub")
    for path in pkg.rglob("*.py"):
        os.utime(path, (1, 1))
    assert _hash_in_subprocess(tmp_path, "stance.sub") == before
    (pkg / "unrelated.py").write_text("Y = 2\n")
    assert _hash_in_subprocess(tmp_path, "stance.sub") == before
    (pkg / "helper.py").write_text("X = 2\n")  # imported inside a function: still counted
    assert _hash_in_subprocess(tmp_path, "stance.sub") != before


def test_resolved_config_is_written(tmp_path):
    import json

    path = provenance.write_resolved_config(tmp_path, "render", {"code_hash": "abc"})
    record = json.loads(path.read_text())
    assert record["stage"] == "render" and record["code_hash"] == "abc"
