"""egs/mini/prepare.sh stages 0-4 end to end on a tiny mini corpus (--scale 0.01)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "egs" / "mini" / "prepare.sh"

TINY_CODEC = """\
num_codebooks: 2
codebook_size: 16
kmeans_iters: 3
max_fit_frames: 2000
"""


@pytest.fixture(scope="module")
def mini_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mini")
    conf = tmp / "tiny_rvq.yaml"
    conf.write_text(TINY_CODEC)
    data = tmp / "data"
    proc = subprocess.run(
        [
            "bash",
            str(RECIPE),
            "--scale",
            "0.01",
            "--data-dir",
            str(data),
            "--codec-config",
            str(conf),
            "--chunk-size",
            "4",
            "--num-jobs",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return data, proc


def test_stages_0_to_4_outputs(mini_run):
    from lhotse import CutSet

    from valle.data import batch as B
    from valle.data.codec_info import CodecInfo
    from valle.data.dataset import SpeechTokenDataset
    from valle.data.manifests import load_cuts
    from valle.data.mini_corpus import MINI_TEST_SPEAKERS
    from valle.data.prompt import SameSpeakerPrompt
    from valle.text import SymbolTable

    data, proc = mini_run
    tok = data / "tokenized"
    for name in ("train", "dev", "test"):
        assert (tok / f"mini_cuts_{name}.jsonl.gz").is_file()
    info = CodecInfo.from_file(tok / "codec.json")
    assert (info.name, info.num_codebooks, info.codebook_size) == ("mel_rvq", 2, 16)
    assert info.path == str(data / "codec" / "mel_rvq")
    train = CutSet.from_file(tok / "mini_cuts_train.jsonl.gz").to_eager()
    assert len(train) > 0
    assert not {c.supervisions[0].speaker for c in train} & set(MINI_TEST_SPEAKERS)
    symbols = SymbolTable.from_file(data / "tokens.txt")
    batch = SpeechTokenDataset(symbols, prompt=SameSpeakerPrompt(train))[train]
    assert batch[B.AUDIO_CODES].shape[0] == len(train) and batch[B.AUDIO_CODES].shape[2] == 2
    assert int(batch[B.AUDIO_CODES].max()) < 16
    # frames at the codec's rate: T ~ duration * 80 Hz
    for cut, n in zip(train, batch[B.AUDIO_LENS].tolist(), strict=True):
        assert abs(n - cut.duration * info.frame_rate) <= 1
    # the summary table is printed at the end
    summary = (tok / "mini_summary.txt").read_text()
    assert summary.splitlines()[0].split() == ["split", "hours", "speakers", "utterances"]
    assert summary in proc.stdout
    total = next(line.split() for line in summary.splitlines() if line.startswith("total"))
    assert int(total[3]) == sum(
        len(load_cuts(tok / f"mini_cuts_{n}.jsonl.gz")) for n in ("train", "dev", "test")
    )


def test_rerun_is_idempotent(mini_run):
    data, _ = mini_run
    before = (data / "tokenized" / "mini_cuts_train.jsonl.gz").stat().st_mtime_ns
    proc = subprocess.run(
        ["bash", str(RECIPE), "--scale", "0.01", "--data-dir", str(data),
         "--codec-config", str(data.parent / "tiny_rvq.yaml")],  # the first run's options
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.count("skipping") == 6  # stage 0, 1, fit, codes, 3, 4
    assert (data / "tokenized" / "mini_cuts_train.jsonl.gz").stat().st_mtime_ns == before


def test_merged_codec_spec_encodes_vall_e_r_codes(mini_run, tmp_path):
    """--codec-spec with mel_rvq_merged (VALL-E R codec merging), on the corpus of the first
    run as the header shows: codebook 1 constant over 2-frame windows, codec.json says so; the
    first data directory refuses the other spec instead of silently keeping its plain codes."""
    from lhotse import CutSet

    from valle.data.codec_info import CodecInfo
    from valle.data.prompt import load_codes

    data, _ = mini_run
    spec = tmp_path / "merged.yaml"
    spec.write_text("name: mel_rvq_merged\noptions:\n  merge_rates: [2, 1]\n")
    conf = tmp_path / "tiny_rvq.yaml"
    conf.write_text(TINY_CODEC)
    merged = tmp_path / "data_merged"
    merged.mkdir()
    (merged / "corpus").symlink_to(data / "corpus")
    args = ["--codec-config", str(conf), "--codec-spec", str(spec), "--chunk-size", "4"]
    proc = subprocess.run(
        [
            "bash",
            str(RECIPE),
            "--stage",
            "1",
            "--stop-stage",
            "2",
            "--data-dir",
            str(merged),
            *args,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    info = CodecInfo.from_file(merged / "tokenized" / "codec.json")
    assert info.name == "mel_rvq_merged" and info.options == {"merge_rates": [2, 1]}
    cuts = CutSet.from_file(merged / "tokenized" / "mini_cuts_codes.jsonl.gz")
    assert len(cuts) > 0
    for cut in cuts:
        first = load_codes(cut)[:, 0]
        assert torch.equal(first[0::2][: first.shape[0] // 2], first[1::2])
    other = subprocess.run(
        [
            "bash",
            str(RECIPE),
            "--stage",
            "2",
            "--stop-stage",
            "2",
            "--data-dir",
            str(data),
            "--codec-config",
            str(data.parent / "tiny_rvq.yaml"),  # the first run's, so only the spec differs
            "--codec-spec",
            str(spec),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert other.returncode != 0
    assert f"made with --codec-spec conf/codec_mel_rvq.yaml, not {spec}" in other.stdout


def test_another_codec_config_is_refused_not_ignored(mini_run, tmp_path):
    """A data directory whose codec was fitted with one --codec-config refuses another one
    (e.g. conf/mel_rvq_hifigan.yaml) instead of silently keeping the old codec."""
    data, _ = mini_run
    conf = tmp_path / "other_rvq.yaml"
    conf.write_text(TINY_CODEC.replace("codebook_size: 16", "codebook_size: 32"))
    before = (data / "codec" / "mel_rvq" / "config.json").read_text()
    proc = subprocess.run(
        ["bash", str(RECIPE), "--stage", "2", "--stop-stage", "2", "--data-dir", str(data),
         "--codec-config", str(conf)],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    first = data.parent / "tiny_rvq.yaml"
    assert f"fitted with --codec-config {first}, not {conf}" in proc.stdout
    assert (data / "codec" / "mel_rvq" / "config.json").read_text() == before


def test_missing_input_says_which_stage(tmp_path):
    proc = subprocess.run(
        ["bash", str(RECIPE), "--stage", "3", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "codec tokens of stage 2" in proc.stdout


def test_help_lists_options():
    proc = subprocess.run(
        ["bash", str(RECIPE), "--help"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0 and "--stop-stage 4" in proc.stdout and "--scale" in proc.stdout
