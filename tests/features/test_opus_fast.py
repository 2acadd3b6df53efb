"""FFmpeg's own Opus decoder (``decoder="fast"``) against libsndfile/libopus (``"reference"``).

Files are Ogg Opus made by libopus (through libsndfile) from synthetic music
(:mod:`mirdl.features.synth`). Checked: the two decodes start and end on the same samples
(cross-correlation lag 0, equal lengths), the bench's log-mel stays within the stated bound
:data:`mirdl.features.audio.OPUS_FAST_BOUND_DB`, ``reference`` is libsndfile's decode, and cut or
corrupt files are errors on the fast path as on the reference one.
"""
import numpy as np
import pytest
import soundfile as sf

from mirdl.errors import AudioError, ConfigError
from mirdl.features import ogg, synth
from mirdl.features.audio import OPUS_FAST_BOUND_DB, WRITE_BLOCK_FRAMES, decode, decoder_for, iter_blocks, load, probe
from mirdl.features.representations import compute
from mirdl.features.spec import FeatureSpec

pytest.importorskip("av")

# The bench's spec (benchmarks/bench_all.py).
SPEC = FeatureSpec(representation="logmel", sample_rate=22050, params={"n_fft": 2048, "hop_length": 512, "n_mels": 128})
SECONDS = 4.0


def encode(path, y, *, level, sr=48000):
    """Ogg Opus by libopus through libsndfile; ``level`` 0 (highest bitrate) .. 1 (lowest)."""
    with sf.SoundFile(path, "w", samplerate=sr, channels=y.shape[0], format="OGG", subtype="OPUS",
                      compression_level=level) as handle:
        for begin in range(0, y.shape[1], WRITE_BLOCK_FRAMES):
            handle.write(y[:, begin:begin + WRITE_BLOCK_FRAMES].T)
    return path


@pytest.fixture(scope="module")
def music():
    """Two stereo 48 kHz synthetic tracks (different instruments)."""
    return [synth.synth_track(label=label, rng=np.random.default_rng(i), sr=48000, duration=SECONDS, channels=2).audio
            for i, label in enumerate(synth.CLASSES[:2])]


@pytest.fixture(scope="module", params=[0.5, 0.9], ids=["mid-bitrate", "low-bitrate"])
def opus_files(request, music, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"opus{request.param}")
    return [encode(folder / f"{i}.opus", y, level=request.param) for i, y in enumerate(music)]


def lag(a, b, max_lag=1000):
    a_mid = a[max_lag:-max_lag]
    scores = [np.dot(a_mid, b[max_lag + k:max_lag + k + len(a_mid)]) for k in range(-max_lag, max_lag + 1)]
    return int(np.argmax(scores)) - max_lag


def test_fast_decode_is_aligned_with_libsndfile(opus_files):
    for path in opus_files:
        fast = decode(path, channels=2, decoder="fast")
        ref = decode(path, channels=2, decoder="reference")
        assert (fast.decoder, ref.decoder) == ("pyav_opus", "soundfile")
        assert fast.y.shape == ref.y.shape == (2, int(SECONDS * 48000))  # pre-skip and end padding dropped alike
        assert lag(ref.y[0], fast.y[0]) == 0
        # Not libopus's bits, but the same waveform to well under an LSB of 8-bit audio.
        np.testing.assert_allclose(fast.y, ref.y, atol=5e-3)
        assert fast.warnings == ref.warnings == ()


def test_fast_log_mel_within_the_stated_bound(opus_files):
    for path in opus_files:
        ref, fast = (compute(load(path, sample_rate=SPEC.sample_rate, decoder=mode)[0], spec=SPEC)
                     for mode in ("reference", "fast"))
        diff = np.abs(ref.astype(np.float64) - fast)
        assert diff.mean() <= OPUS_FAST_BOUND_DB["mean"]
        assert np.quantile(diff, 0.999) <= OPUS_FAST_BOUND_DB["p999"]
        assert diff.max() <= OPUS_FAST_BOUND_DB["max"]


def test_reference_gives_libsndfiles_samples(opus_files):
    for path in opus_files:
        expected = sf.read(path, dtype="float32", always_2d=True)[0].T
        np.testing.assert_array_equal(decode(path, channels=2, decoder="reference").y, expected)
        np.testing.assert_array_equal(decode(path, channels=2).y, expected)  # the library default


def test_fast_excerpt_and_blocks_match_the_whole_decode(opus_files):
    path = opus_files[0]
    whole = decode(path, decoder="fast").y
    excerpt = load(path, decoder="fast", offset=1.0, duration=0.5)[0]
    np.testing.assert_array_equal(excerpt, whole[48000:72000])
    blocks = np.concatenate(list(iter_blocks(path, decoder="fast", block_frames=10000)))
    np.testing.assert_array_equal(blocks, whole)


def test_only_48k_ogg_opus_takes_the_fast_path(tmp_path, music):
    wav = tmp_path / "a.wav"
    sf.write(wav, music[0].T, 48000)
    low = encode(tmp_path / "low.opus", music[0][:, ::3].copy(), level=0.5, sr=16000)  # libsndfile decodes at 16 kHz
    in_ogg = encode(tmp_path / "named.ogg", music[0], level=0.5)
    vorbis = tmp_path / "v.ogg"
    sf.write(vorbis, music[0].T, 48000, format="OGG", subtype="VORBIS")
    assert decoder_for(wav, mode="fast").name == "soundfile"
    assert decoder_for(low, mode="fast").name == "soundfile"
    assert decoder_for(vorbis, mode="fast").name == "soundfile"
    assert decoder_for(in_ogg, mode="fast").name == "pyav_opus"
    assert decoder_for(in_ogg).name == "soundfile"
    np.testing.assert_array_equal(load(low, decoder="fast")[0], load(low)[0])
    assert ogg.opus_head(in_ogg).pre_skip == 312


def test_fast_probe_reports_libsndfiles_header(opus_files):
    path = opus_files[0]
    info = sf.info(path)
    from mirdl.features.audio import _open  # the source probe() reads, with the fast mode
    with _open(path, mode="fast") as source:
        assert (source.samplerate, source.channels, source.frames, source.format, source.subtype) == \
            (info.samplerate, info.channels, info.frames, "OGG", "OPUS")
    assert probe(path).decoder == "soundfile"


@pytest.mark.parametrize("where", ["inside-last-page", "before-last-page"])
def test_cut_files_are_errors_on_the_fast_path(opus_files, tmp_path, where):
    path = opus_files[0]
    with open(path, "rb") as handle:
        last = list(ogg.iter_pages(handle))[-1]
    end = last.offset + 40 if where == "inside-last-page" else last.offset
    cut = tmp_path / "cut.opus"
    cut.write_bytes(path.read_bytes()[:end])
    for mode in ("fast", "reference"):
        with pytest.raises(AudioError, match=r"cut.opus: truncated: "):
            decode(cut, decoder=mode)


def test_garbage_after_the_header_is_an_error_on_the_fast_path(opus_files, tmp_path):
    data = bytearray(opus_files[0].read_bytes())
    with open(opus_files[0], "rb") as handle:
        pages = list(ogg.iter_pages(handle))
    # Keep the two header pages and the page structure; overwrite the audio pages' bodies with junk.
    for page in pages[2:]:
        body = page.offset + 27 + data[page.offset + 26]
        data[body:page.end] = bytes(np.random.default_rng(0).integers(0, 256, page.end - body, dtype=np.uint8))
        ogg.set_page_fields(data, page)
    bad = tmp_path / "junk.opus"
    bad.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=r"junk.opus: corrupt data"):
        decode(bad, decoder="fast")


def test_decoder_argument_is_checked():
    with pytest.raises(ConfigError, match=r"decoder='quick'"):
        load("x.opus", decoder="quick")


@pytest.mark.parametrize("extra, outcome", [(4800, "warning"), (48000, "truncated")])
def test_header_longer_than_the_audio_on_the_fast_path(opus_files, tmp_path, extra, outcome):
    """A last granule position ``extra`` frames past the audio: a warning within the 0.5 s tolerance,
    truncated beyond it, on both paths."""
    data = bytearray(opus_files[0].read_bytes())
    with open(opus_files[0], "rb") as handle:
        last = list(ogg.iter_pages(handle))[-1]
    ogg.set_page_fields(data, last, granule=last.granule + extra)
    longer = tmp_path / "longer.opus"
    longer.write_bytes(bytes(data))
    if outcome == "truncated":
        for mode in ("fast", "reference"):
            with pytest.raises(AudioError, match=r"longer.opus: truncated: expected \d+ frames, read \d+"):
                decode(longer, decoder=mode)
        return
    fast, ref = decode(longer, decoder="fast"), decode(longer, decoder="reference")
    assert fast.y.shape == ref.y.shape
    assert len(fast.warnings) == len(ref.warnings) == 1
    assert "fewer than the OGG header declares" in fast.warnings[0]
