"""egs/mini/run.sh stages 7-8 (decode, score, RESULTS.md) on a tiny prepared corpus and a tiny
random checkpoint, plus the pieces they rely on (RESULTS.md rendering, stage times, zh prompts).

The tiny corpus (prepare.sh --scale 0.01) has one utterance per voice and an empty test split, so
the test cuts are the two halves of each English training utterance of at least 4 s: two
utterances per speaker, enough for the cross-sentence setting. One item per setting keeps the
faster-whisper scoring short.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "egs" / "mini" / "run.sh"
PREPARE = REPO / "egs" / "mini" / "prepare.sh"
WHISPER = REPO.parent / "shared" / "models" / "faster-whisper-base"

TINY_CODEC = "num_codebooks: 2\ncodebook_size: 16\nkmeans_iters: 3\nmax_fit_frames: 2000\n"
DECODE = """\
seed: 0
batch_size: 4
settings: [cont, cross]
languages:
  en: {prompt_seconds: 1.0, min_seconds: 1.5, max_seconds: 10.0, max_items: 1}
"""
SYSTEMS = ("ground truth", "codec resynthesis", "valle (tiny)")


def _make_test_cuts_and_checkpoint(data: Path, out: Path) -> tuple[Path, Path]:
    from lhotse import CutSet

    from valle.config import to_dict
    from valle.testing.model import tiny_model
    from valle.text import SymbolTable
    from valle.train.checkpoint import save_inference_checkpoint

    train = CutSet.from_file(data / "tokenized" / "mini_cuts_train.jsonl.gz").to_eager()
    halves = []
    for c in train:
        if c.supervisions[0].language != "en" or c.duration < 4.0:
            continue
        d = c.duration / 2
        halves.append(c.truncate(offset=0, duration=d).with_id(c.id + "-a"))
        halves.append(c.truncate(offset=d, duration=c.duration - d).with_id(c.id + "-b"))
    assert halves, "the tiny corpus has no English utterance of 4 s or more"
    cuts = out / "test_cuts.jsonl.gz"
    CutSet.from_cuts(halves).to_file(cuts)
    symbols = SymbolTable.from_file(data / "tokens.txt")
    model = tiny_model(
        seed=0, text_vocab_size=len(symbols), codebook_size=16, num_codebooks=2, max_len_ratio=2.0
    )
    ckpt = save_inference_checkpoint(
        out / "model.pt", model.state_dict(), {"model": to_dict(model.config)}, step=1
    )
    return cuts, Path(ckpt)


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    if not WHISPER.is_dir():
        pytest.skip(f"no local faster-whisper model at {WHISPER}")
    tmp = tmp_path_factory.mktemp("mini_loop")
    (tmp / "tiny_rvq.yaml").write_text(TINY_CODEC)
    (tmp / "decode.yaml").write_text(DECODE)
    data, exp = tmp / "data", tmp / "exp"
    prep = subprocess.run(
        ["bash", str(PREPARE), "--scale", "0.01", "--data-dir", str(data), "--codec-config",
         str(tmp / "tiny_rvq.yaml"), "--chunk-size", "8", "--num-jobs", "2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert prep.returncode == 0, prep.stdout[-2000:] + prep.stderr[-2000:]
    cuts, ckpt = _make_test_cuts_and_checkpoint(data, tmp)
    args = ["bash", str(RUN), "--stage", "7", "--stop-stage", "8", "--data-dir", str(data),
            "--variant", "valle",
            "--exp-dir", str(exp), "--checkpoint", str(ckpt), "--test-cuts", str(cuts),
            "--decode-config", str(tmp / "decode.yaml"), "--results", str(tmp / "RESULTS.md")]  # fmt: skip
    run = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return tmp, exp, args


def test_wavs_lists_and_tables(loop):
    import soundfile as sf

    from valle.eval.protocols import read_protocol

    tmp, exp, _ = loop
    for setting in ("cont", "cross"):
        items = read_protocol(exp / "decode" / "lists" / f"{setting}_en.jsonl")
        assert len(items) == 1 and items[0].setting == setting
        for sub in ("", "resynth", "resynth/prompts"):
            wav = exp / "decode" / setting / sub / f"{items[0].id}.wav"
            info = sf.info(str(wav))
            assert info.frames > 0 and info.samplerate == 16000, wav
        if setting == "cross":
            assert items[0].prompt_cut_id != items[0].id
        rows = {r["system"]: r for r in csv.DictReader(open(exp / "score" / f"{setting}_en.csv"))}
        assert tuple(rows) == SYSTEMS
        for r in rows.values():
            assert float(r["wer_percent"]) >= 0 and -1 <= float(r["sim_o"]) <= 1
        # real speech is recognised better than a random model's output
        wer = {name: float(r["wer_percent"]) for name, r in rows.items()}
        assert wer["ground truth"] < wer["valle (tiny)"]
        assert (exp / "score" / f"{setting}_en.png").stat().st_size > 1000
        # every row is scored against the same words: for cont those after the prompt
        ref_lens = {
            json.loads((exp / "score" / setting / "en" / f"system{k}" / "wer_summary.json")
                       .read_text())["ref_len"]
            for k in range(3)
        }  # fmt: skip
        assert len(ref_lens) == 1, ref_lens  # (before: whole transcripts in cont's first rows)
    # the two settings share their target: the second one's codec row came from the cache
    info = json.loads((exp / "decode" / "decode_info.json").read_text())
    assert info["settings"]["cont"]["resynth_cached"] == 0
    assert info["settings"]["cross"]["resynth_cached"] == 1
    assert len(list((tmp / "data" / "resynth_cache").glob("*.wav"))) == 3  # target, 2 prompts


def test_results_md(loop):
    tmp, exp, _ = loop
    text = (tmp / "RESULTS.md").read_text()
    assert "## Continuation" in text and "## Cross-sentence" in text
    for name in SYSTEMS:
        assert text.count(f"| {name} |") == 2, name  # one row per setting
    assert "./run.sh --stage 7 --stop-stage 8" in text
    assert "git commit:" in text and "hardware:" in text
    for setting in ("cont", "cross"):  # issue 9's length target, per list
        assert f"output length {setting} en: " in text and "within 25% of the reference" in text
    stages = [line.split("\t")[0] for line in (exp / "stage_times.tsv").read_text().splitlines()]
    assert stages == ["7", "8"]
    assert "| 7 | decode |" in text and "| 8 | score |" in text


def test_rerun_skips_done_stages(loop):
    tmp, exp, args = loop
    wav = next((exp / "decode" / "cont").glob("*.wav"))
    before = wav.stat().st_mtime_ns
    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("skipping") == 2
    assert wav.stat().st_mtime_ns == before
    # skipped stages leave their measured times alone
    assert len((exp / "stage_times.tsv").read_text().splitlines()) == 2


@pytest.mark.parametrize(
    ("variant", "cuts", "stage"), [("valle", "tokenized", 6), ("melle_aligned", "align", 5)]
)
def test_missing_checkpoint_says_which_stage(tmp_path, variant, cuts, stage):
    """The main job's model (melle_aligned, on the aligner's cuts) is complete after stage 5,
    VALL-E after its NAR (stage 6)."""
    data = tmp_path / "data" / cuts
    data.mkdir(parents=True)
    (data / "mini_cuts_test.jsonl.gz").write_bytes(b"")
    proc = subprocess.run(
        ["bash", str(RUN), "--stage", "7", "--stop-stage", "7", "--data-dir",
         str(tmp_path / "data"), "--exp-dir", str(tmp_path / "exp"), "--variant", variant,
         "--align", "true" if cuts == "align" else "false"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0 and f"the trained model (stage {stage}" in proc.stdout


def test_stage_times_and_render(tmp_path):
    from valle.eval.report import ResultsTable
    from valle.eval.results_md import ResultSection, read_stage_times, render_results_md

    times = tmp_path / "t.tsv"
    times.write_text("8\t100\t160\tscore\n7\t10\t70\tdecode\n7\t200\t290\tdecode\n")
    st = read_stage_times(times)
    assert [(s.stage, s.seconds) for s in st] == [("7", 90.0), ("8", 60.0)]
    table = ResultsTable({"ground truth": {"wer": 0.05, "sim_o": 0.9, "sim_r": 0.8}})
    md = render_results_md(
        [ResultSection("cross", "zh", table, 3, 1.5),
         ResultSection("cont", "en", table, 24, 3.0, shortest_prompt=2.5312)],
        title="T", command="./run.sh", commit="abc", hardware="hw", stage_times=st,
    )  # fmt: skip
    assert "### zh: 3 items, 1.5 s prompts (CER" in md
    assert "### en: 24 items, 2.53-3.00 s prompts (WER)" in md  # word-boundary windows
    assert "| ground truth | 5.00 | 0.900 | 0.800 |" in md
    assert "| 7 | decode |" in md and "1:30" in md
    with pytest.raises(ValueError, match="no result table"):
        render_results_md([], title="T", command="c", commit="c", hardware="h")
    times.write_text("7 10 70\n")
    with pytest.raises(ValueError, match="expected"):
        read_stage_times(times)


def test_chinese_prompt_transcript_is_split_by_characters():
    from lhotse import MonoCut, Recording, SupervisionSegment
    from lhotse.audio import AudioSource

    from valle.eval.protocols import words_in_window

    rec = Recording(
        id="r", sources=[AudioSource(type="file", channels=[0], source="/dev/null")],
        sampling_rate=16000, num_samples=16000 * 4, duration=4.0,
    )  # fmt: skip
    sup = SupervisionSegment(
        id="s", recording_id="r", start=0.0, duration=4.0, text="我每天早上六点起床", language="zh"
    )
    cut = MonoCut(id="c", start=0.0, duration=4.0, channel=0, recording=rec, supervisions=[sup])
    inside, after, source = words_in_window(cut, 0.0, 2.0)
    assert source == "proportional"
    assert (inside, after) == ("我每天早", "上六点起床")


def test_similarity_scores_an_output_without_speech():
    """An untrained model may output silence; stage 8 must score it, not stop."""
    import numpy as np

    from valle.eval.similarity import ResemblyzerEncoder

    rng = np.random.default_rng(0)
    voice = (0.1 * rng.standard_normal(32000)).astype(np.float32)
    emb = ResemblyzerEncoder().embed([np.zeros(100, np.float32), voice], 16000)  # (B, D)
    assert emb.shape[0] == 2
    assert float(emb[0].norm()) == 0.0 and float(emb[1].norm()) > 0.5


def test_faster_whisper_asks_for_simplified_chinese():
    """CER of the zh test speaker compares characters: Whisper gets a simplified-Chinese prompt."""
    import numpy as np

    from valle.eval.asr import FasterWhisperASR

    seen = []

    class Segment:
        text = " x "

    class Model:
        def transcribe(self, wave, language=None, initial_prompt=None, **kwargs):
            seen.append((language, initial_prompt))
            return [Segment()], None

    asr = FasterWhisperASR(model=Model())
    wave = np.zeros(16000, np.float32)
    assert asr.transcribe([wave], 16000, "zh") == ["x"]
    asr.transcribe([wave], 16000, "en")
    FasterWhisperASR(model=Model(), initial_prompt="p").transcribe([wave], 16000, "zh")
    assert seen == [("zh", "以下是普通话的句子。"), ("en", None), ("zh", "p")]


def test_japanese_cer_compares_readings():
    """The mini ja transcripts are kana, Whisper answers in kanji: same words, no error."""
    pytest.importorskip("pyopenjtalk")
    from valle.eval.wer import score_corpus

    res = score_corpus(
        ["a"], ["きょうは とても いい てんき です。"], ["今日はとてもいい天気です"], "ja"
    )
    assert res.metric == "CER" and res.error_rate == 0.0
    res = score_corpus(["a"], ["きょうは いい てんき です。"], ["今日は悪い天気です"], "ja")
    assert res.error_rate > 0.0


def test_empty_system_output_has_zero_similarity():
    """A model that stops at once writes an empty wave; stage 8 scores it as similarity 0."""
    import numpy as np

    from valle.eval.similarity import WaveBatch, score_similarity

    class Encoder:
        sample_rate = 16000

        def embed(self, waves, sample_rate):
            import torch

            assert all(len(w) > 0 for w in waves)
            return torch.stack([torch.tensor([1.0, float(len(w) % 7)]) for w in waves])

    wave = np.ones(1600, np.float32)
    res = score_similarity(
        Encoder(), ["a", "b"], WaveBatch([np.zeros(0, np.float32), wave], 16000),
        prompt=WaveBatch([wave, wave], 16000),
    )  # fmt: skip
    assert res.rows[0].sim_o == 0.0 and res.rows[1].sim_o == pytest.approx(1.0)


def test_stage_9_scores_the_hard_sentences_in_a_test_prompts_voice(loop):
    import json

    tmp, exp, args = loop
    sentences = tmp / "hard.txt"
    # h3's 'ɔ' is not in the tiny corpus's symbol table: left out and named, not a crash
    sentences.write_text("h1\tshort\tYes.\nh2\trepeated\tSee, see, see.\nh3\tshort\tThe cat sat on the mat.\n")
    run = subprocess.run(
        [*args[:2], "--stage", "9", "--stop-stage", "9", *args[6:], "--hard-sentences",
         str(sentences), "--model-name", "tiny", "--decode-opts", "--set ar.max_len_ratio=1.5"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    hard = exp / "hard"
    summary = json.loads((hard / "hard_summary.json").read_text())
    assert summary["sentences"] == 2 and summary["system"] == "tiny"
    assert len(summary["unsayable"]) == 1 and summary["unsayable"][0].startswith("h3: ")
    assert summary["model_overrides"] == ["ar.max_len_ratio=1.5"]  # the decode stage's options
    assert set(summary["by_category"]) == {"short", "repeated"}
    assert sorted(p.name for p in (hard / "wav").iterdir()) == ["h1.wav", "h2.wav"]
    cross = json.loads((exp / "decode" / "lists" / "cross_en.jsonl").read_text().splitlines()[0])
    assert (hard / "prompt.txt").read_text().strip() == cross["prompt_text"]
    assert "| tiny | all | 2 |" in (hard / "hard_table.md").read_text()
