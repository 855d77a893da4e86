"""egs/*/run.sh training stages: syntax, options, clear errors (the full run is a recipe job)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

EGS = Path(__file__).resolve().parents[2] / "egs"


@pytest.mark.parametrize("recipe", ["mini", "libritts"])
def test_run_sh_help_and_errors(recipe, tmp_path):
    script = EGS / recipe / "run.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    out = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--ar-config conf/train_ar.yaml" in out.stdout
    missing = subprocess.run(
        [
            "bash",
            str(script),
            "--stage",
            "5",
            "--data-dir",
            str(tmp_path / "nodata"),
            "--exp-dir",
            str(tmp_path / "exp"),
        ],
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0
    assert "run the earlier stages first" in missing.stdout
    later = subprocess.run(
        ["bash", str(script), "--stage", "7", "--stop-stage", "8", "--data-dir",
         str(tmp_path / "nodata"), "--exp-dir", str(tmp_path / "exp")],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert later.returncode != 0 and "run the earlier stages first" in later.stdout
    typo = subprocess.run(["bash", str(script), "--max-steps", "3"], capture_output=True, text=True)
    assert typo.returncode != 0 and "unknown option" in typo.stderr


@pytest.mark.parametrize("recipe", ["mini", "libritts"])
@pytest.mark.parametrize("which", ["train_ar.yaml", "train_nar.yaml"])
def test_recipe_configs_load(recipe, which):
    from valle.train.config import compose_experiment

    cfg = compose_experiment(
        "valle",
        "tiny",
        [EGS / recipe / "conf" / which],
        [],
        text_vocab_size=10,
        codebook_size=16,
        num_codebooks=2,
    )
    assert cfg.train.stages == (("ar",) if which == "train_ar.yaml" else ("nar",))
