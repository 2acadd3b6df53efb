"""Tests for the decoders of mirdl.features.audio with files made by real encoders.

Ogg Vorbis and Opus come from libvorbis / libopus (through libsndfile's writer, and through PyAV's
FFmpeg, which bundles libopus and its own Vorbis encoder); AAC, WMA and the rest from FFmpeg's
encoders through :func:`mirdl.features.synth.write_pyav`. Each is checked whole, cut and edited.
"""
import io
import sys
import time
import warnings

import numpy as np
import pytest
import soundfile as sf

from mirdl.errors import AudioError, ConfigError
from mirdl.features import ogg
from mirdl.features.audio import (
    AUDIO_EXTENSIONS,
    DECODERS,
    LENGTH_TOLERANCE_SECONDS,
    AudioWarning,
    decode,
    decoder_for,
    decoder_versions,
    iter_blocks,
    load,
    probe,
    write_audio,
)
from mirdl.features.synth import write_pyav

SECONDS = 4.0


def chirp(sr, *, seconds=SECONDS, channels=1, onset=None):
    """A rising chirp with a little noise (so encoders write several pages); silent before ``onset`` s."""
    t = np.arange(int(round(seconds * sr))) / sr
    y = 0.4 * np.sin(2 * np.pi * (300.0 * t + 150.0 * t**2)) \
        + 0.02 * np.random.default_rng(0).standard_normal(len(t))
    if onset is not None:
        y[t < onset] = 0.0
    y = y.astype(np.float32)
    return y if channels == 1 else np.stack([y, 0.5 * y])


def tone(freq, sr, *, seconds=SECONDS, onset=None):
    t = np.arange(int(round(seconds * sr))) / sr
    y = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    if onset is not None:
        y[t < onset] = 0.0
    return y


def peak_hz(y, sr):
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.argmax(spectrum) * sr / len(y)


# Ogg files from real encoders: name -> (sample rate, channels, writer(path, y, sr)).
OGG_ENCODERS = {
    "libvorbis": (44100, 1, lambda path, y, sr: write_audio(path, y, sample_rate=sr, format="OGG",
                                                             subtype="VORBIS")),
    "libsndfile-libopus": (48000, 2, lambda path, y, sr: write_audio(path, y, sample_rate=sr, format="OGG",
                                                                      subtype="OPUS")),
    "pyav-libopus": (48000, 1, lambda path, y, sr: write_pyav(path, y, sample_rate=sr, codec="libopus")),
    "pyav-vorbis": (44100, 2, lambda path, y, sr: write_pyav(path, y, sample_rate=sr, codec="vorbis",
                                                              codec_options={"strict": "experimental"})),
}


@pytest.fixture(params=sorted(OGG_ENCODERS))
def ogg_file(request, tmp_path):
    """(encoder name, path, signal, sample rate) of a whole Ogg file."""
    sr, channels, writer = OGG_ENCODERS[request.param]
    y = chirp(sr, channels=channels)
    path = tmp_path / f"{request.param}.{'opus' if 'opus' in request.param else 'ogg'}"
    writer(path, y, sr)
    return request.param, path, y, sr


def pages_of(path):
    with open(path, "rb") as handle:
        return list(ogg.iter_pages(handle))


def cut(path, end, name):
    out = path.with_name(name + path.suffix)
    out.write_bytes(path.read_bytes()[:end])
    return out


def edit_page(path, index, *, granule_delta=0, clear_flags=0, name="edited"):
    """A copy of ``path`` with page ``index`` changed (granule position, flags) and its checksum redone."""
    data = bytearray(path.read_bytes())
    page = pages_of(path)[index]
    ogg.set_page_fields(data, page, flags=page.flags & ~clear_flags, granule=page.granule + granule_delta)
    out = path.with_name(name + path.suffix)
    out.write_bytes(bytes(data))
    return out


# ------------------------------------------------------------------------------------------------
# registry


def test_extensions_come_from_the_decoders():
    assert {"wav", "flac", "ogg", "oga", "opus", "mp3", "m4a", "aac", "wma"} <= set(AUDIO_EXTENSIONS)
    assert set(AUDIO_EXTENSIONS) == {ext for decoder in DECODERS.values() for ext in decoder.extensions}
    for name in ("a.ogg", "a.OGA", "a.opus", "a.flac", "a.wav", "a.mp3"):
        assert decoder_for(name).name == "soundfile"
    for name in ("a.m4a", "a.AAC", "a.wma", "a.mp4"):
        assert decoder_for(name).name == "pyav"
    versions = decoder_versions()
    assert versions["soundfile"] == f"soundfile {sf.__version__} (libsndfile {sf.__libsndfile_version__})"
    assert versions["pyav"].startswith("av ") and "FFmpeg" in versions["pyav"]
    assert decoder_versions(["soundfile"]) == {"soundfile": versions["soundfile"]}  # a job's decoders only
    with pytest.raises(ValueError, match="not decoders"):
        decoder_versions(["ffmpeg"])


# ------------------------------------------------------------------------------------------------
# Ogg: whole, cut, without end of stream, lengths that disagree


def test_whole_ogg_files_decode_to_their_length(ogg_file):
    encoder, path, y, sr = ogg_file
    status = ogg.ogg_status(path)
    assert not status.truncated and status.problem() is None
    assert status.codec == ("opus" if "opus" in encoder else "vorbis")
    result = decode(path)
    assert result.decoder == "soundfile" and result.warnings == () and result.sample_rate == sr
    # FFmpeg's Vorbis encoder does not trim its last block: up to one block (2048 frames) more.
    assert len(y.T) <= result.y.shape[-1] <= len(y.T) + (2048 if encoder == "pyav-vorbis" else 0)
    assert probe(path).frames == result.y.shape[-1]


@pytest.mark.parametrize("where", ["half", "page_boundary", "inside_last_page", "inside_a_page_header"])
def test_cut_ogg_files_are_truncated(ogg_file, where):
    _, path, _, _ = ogg_file
    pages = pages_of(path)
    size = path.stat().st_size
    end = {"half": size // 2, "page_boundary": pages[-1].offset, "inside_last_page": size - 5,
           "inside_a_page_header": pages[-2].offset + 10}[where]
    short = cut(path, end, where)
    reason = "no end-of-stream flag" if where == "page_boundary" else "ends inside an Ogg page"
    with pytest.raises(AudioError, match=f"{short.name}: truncated: .*{reason}"):
        probe(short)
    with pytest.raises(AudioError, match="truncated"):
        load(short)
    if where == "page_boundary":
        # The bug this guards against: libsndfile alone opens it as a whole, shorter file.
        assert 0 < sf.info(str(short)).frames < sf.info(str(path)).frames


def test_ogg_without_end_of_stream_flag_is_truncated(ogg_file):
    _, path, _, _ = ogg_file
    no_eos = edit_page(path, -1, clear_flags=ogg.FLAG_EOS, name="no_eos")
    assert ogg.ogg_status(no_eos).end_of_stream is False
    with pytest.raises(AudioError, match="no_eos.*truncated: the last Ogg page .* no end-of-stream flag"):
        load(no_eos)


def test_ogg_trailing_bytes_after_the_last_page_are_not_truncation(tmp_path):
    sr, _, writer = OGG_ENCODERS["libvorbis"]
    path = tmp_path / "tagged.ogg"
    writer(path, chirp(sr), sr)
    whole, _ = load(path)
    path.write_bytes(path.read_bytes() + b"TAG" + bytes(125))  # an ID3v1-like tag appended
    assert ogg.ogg_status(path).skipped_bytes == 128
    np.testing.assert_array_equal(load(path)[0], whole)


@pytest.mark.parametrize("encoder", ["pyav-libopus", "libvorbis"])
def test_header_longer_than_decode_within_tolerance_is_a_warning(tmp_path, encoder):
    # Valid published files declare a little more than they decode (10 frames of Opus, 0.13 s of
    # Vorbis): here the last granule position is raised by 5806 frames (0.12-0.13 s).
    sr, channels, writer = OGG_ENCODERS[encoder]
    path = tmp_path / f"whole.{'opus' if 'opus' in encoder else 'ogg'}"
    writer(path, chirp(sr, channels=channels), sr)
    whole = decode(path)
    longer = edit_page(path, -1, granule_delta=5806, name="longer")
    declared = probe(longer).frames
    assert declared == whole.y.shape[-1] + 5806  # libsndfile believes the granule position
    result = decode(longer)
    assert len(result.warnings) == 1
    assert "longer" in result.warnings[0] and f"({declared})" in result.warnings[0]
    assert whole.y.shape[-1] <= result.y.shape[-1] < declared
    np.testing.assert_allclose(result.y[..., :whole.y.shape[-1]], whole.y, atol=1e-6)
    with pytest.warns(AudioWarning, match="fewer than the OGG header declares"):
        y, _ = load(longer, sample_rate=16000)
    assert len(y) == round(result.y.shape[-1] * 16000 / sr)  # the resampler's tail is flushed
    with pytest.warns(AudioWarning):
        blocks = list(iter_blocks(longer, sample_rate=16000, block_frames=10000))
    np.testing.assert_array_equal(np.concatenate(blocks), y)


def test_header_longer_than_decode_beyond_tolerance_is_truncated(tmp_path):
    sr, _, writer = OGG_ENCODERS["pyav-libopus"]
    path = tmp_path / "whole.opus"
    writer(path, chirp(sr), sr)
    longer = edit_page(path, -1, granule_delta=int(2 * LENGTH_TOLERANCE_SECONDS * sr), name="much_longer")
    with pytest.raises(AudioError, match=r"much_longer.opus: truncated: expected \d+ frames, read \d+"):
        load(longer)


def test_wav_and_flac_keep_exact_length_checks(tmp_path):
    # A FLAC file a few frames short of its header is truncated: the tolerance is for Ogg and containers only.
    y = tone(440.0, 22050, seconds=1.0)
    path = tmp_path / "short.flac"
    write_audio(path, y, sample_rate=22050, subtype="PCM_16")
    data = path.read_bytes()
    cut_flac = cut(path, len(data) - 40, "cut")
    with pytest.raises(AudioError, match="cut.flac: (corrupt data|truncated)"):
        load(cut_flac)


def test_ogg_status_walks_a_long_file_quickly(tmp_path):
    sr = 22050
    path = tmp_path / "long.ogg"
    write_audio(path, chirp(sr, seconds=120.0), sample_rate=sr, format="OGG", subtype="VORBIS")
    started = time.perf_counter()
    status = ogg.ogg_status(path)
    assert time.perf_counter() - started < 1.0
    assert status.pages > 100 and not status.truncated and status.last_granule == 120 * sr


# ------------------------------------------------------------------------------------------------
# PyAV: m4a/AAC, ADTS, WMA, WebM


def onset_index(y, threshold=0.1):
    return int(np.argmax(np.abs(y) > threshold))


@pytest.mark.parametrize("container", ["mp4", "ipod"])
def test_m4a_aac_decodes_with_priming_and_padding_removed(tmp_path, container):
    sr = 44100
    y = tone(1000.0, sr, onset=1.0)
    path = tmp_path / f"tone_{container}.m4a"
    write_pyav(path, y, sample_rate=sr, codec="aac", container=container)
    info = probe(path)
    assert (info.decoder, info.format, info.subtype, info.frames, info.sample_rate) == ("pyav", "MOV", "AAC", len(y), sr)
    result = decode(path)
    assert result.decoder == "pyav" and result.warnings == ()
    assert result.y.dtype == np.float32 and result.y.shape == (len(y),)  # no end padding
    assert abs(onset_index(result.y) - sr) <= 2  # no encoder delay (1024 priming samples) at the start
    assert abs(peak_hz(result.y[sr:], sr) - 1000.0) < 2.0
    y16, sr16 = load(path, sample_rate=16000)
    assert sr16 == 16000 and len(y16) == round(len(y) * 16000 / sr)
    np.testing.assert_array_equal(np.concatenate(list(iter_blocks(path, sample_rate=16000, block_frames=5000))), y16)


def test_m4a_stereo_channels_and_excerpt(tmp_path):
    sr = 48000
    y = np.stack([tone(440.0, sr), tone(880.0, sr)])
    path = tmp_path / "stereo.m4a"
    write_pyav(path, y, sample_rate=sr, codec="aac")
    both, _ = load(path, channels=2)
    assert both.shape == (2, y.shape[1])
    assert abs(peak_hz(both[0], sr) - 440.0) < 2 and abs(peak_hz(both[1], sr) - 880.0) < 2
    mono, _ = load(path)
    np.testing.assert_allclose(mono, both.mean(axis=0), atol=1e-6)
    part, _ = load(path, channels=2, offset=1.0, duration=0.5, block_frames=3000)
    np.testing.assert_array_equal(part, both[:, sr:sr + sr // 2])
    with pytest.raises(AudioError, match="past the end"):
        load(path, offset=SECONDS + 1)


def test_adts_aac_has_no_declared_length(tmp_path):
    sr = 44100
    y = tone(1000.0, sr)
    path = tmp_path / "raw.aac"
    write_pyav(path, y, sample_rate=sr, codec="aac", container="adts")
    info = probe(path)
    assert info.frames is None and info.duration is None and info.decoder == "pyav"
    result = decode(path)
    # Decoded to its end: the encoder's 1024 priming samples and the padding of the last frame stay.
    assert len(y) + 1024 <= len(result.y) <= len(y) + 1024 + 1024
    part, _ = load(path, offset=1.0, duration=0.25)
    np.testing.assert_array_equal(part, result.y[sr:sr + sr // 4])


@pytest.mark.parametrize(("name", "codec", "kwargs"), [
    ("a.wma", "wmav2", {"bit_rate": 128000}),
    ("a.webm", "libopus", {}),
    ("a.mka", "aac", {}),
])
def test_other_containers_decode(tmp_path, name, codec, kwargs):
    sr = 48000
    y = tone(1000.0, sr)
    path = tmp_path / name
    write_pyav(path, y, sample_rate=sr, codec=codec, **kwargs)
    result = decode(path)
    assert result.decoder == "pyav"
    assert abs(result.y.shape[-1] - len(y)) < 0.05 * sr
    assert abs(peak_hz(result.y, sr) - 1000.0) < 2


def test_cut_m4a_is_an_error(tmp_path):
    sr = 44100
    y = chirp(sr)
    # FFmpeg writes the index (moov) last by default: a cut file has none and does not open.
    plain = tmp_path / "plain.m4a"
    write_pyav(plain, y, sample_rate=sr, codec="aac")
    with pytest.raises(AudioError, match="cut_plain.m4a: cannot open as audio"):
        load(cut(plain, plain.stat().st_size * 6 // 10, "cut_plain"))
    # With the index first ("faststart"), a cut file opens and its samples stop short of the index.
    faststart = tmp_path / "faststart.m4a"
    write_pyav(faststart, y, sample_rate=sr, codec="aac", container_options={"movflags": "faststart"})
    assert load(faststart)[0].shape == (len(y),)
    short = cut(faststart, faststart.stat().st_size * 6 // 10, "cut_faststart")
    with pytest.raises(AudioError, match=rf"cut_faststart.m4a: truncated: the file ends inside its last packet, "
                                         rf"after \d+ frames of the {len(y)} declared"):
        load(short)


@pytest.mark.parametrize(("name", "codec", "kwargs"), [
    ("raw.aac", "aac", {"container": "adts"}),
    ("a.wma", "wmav2", {"bit_rate": 128000}),
])
def test_cut_inside_the_last_packet_is_truncated(tmp_path, name, codec, kwargs):
    # ADTS declares no length at all: only the cut last packet tells.
    sr = 44100
    path = tmp_path / name
    write_pyav(path, chirp(sr), sample_rate=sr, codec=codec, **kwargs)
    decode(path)
    short = cut(path, path.stat().st_size * 6 // 10, "cut")
    with pytest.raises(AudioError, match=f"{short.name}: truncated: the file ends inside its last packet"):
        load(short)


def test_not_audio_named_m4a(tmp_path):
    path = tmp_path / "text.m4a"
    path.write_text("not audio at all\n" * 100)
    with pytest.raises(AudioError, match="text.m4a: cannot open as audio"):
        load(path)


def test_mp4_without_audio_stream(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "video.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), dtype=np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(AudioError, match="video.mp4: no audio stream"):
        load(path)


def test_without_pyav_its_files_fail_saying_so(tmp_path, monkeypatch):
    sr = 44100
    path = tmp_path / "a.m4a"
    write_pyav(path, tone(440.0, sr, seconds=0.5), sample_rate=sr, codec="aac")
    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    with pytest.raises(AudioError, match=r"a.m4a: needs PyAV to decode .m4a files.*pip install av"):
        load(path)
    wav = tmp_path / "a.wav"
    write_audio(wav, tone(440.0, sr, seconds=0.5), sample_rate=sr)
    assert load(wav)[0].shape == (sr // 2,)  # soundfile's formats do not need it


# ------------------------------------------------------------------------------------------------
# block writes


def test_write_audio_blocks_give_the_same_wav_and_flac_as_one_call(tmp_path):
    y = chirp(22050, seconds=10.0, channels=2)
    for fmt, subtype in (("WAV", "PCM_16"), ("FLAC", "PCM_24")):
        one, blocks = io.BytesIO(), io.BytesIO()
        sf.write(one, y.T, 22050, format=fmt, subtype=subtype)
        write_audio(blocks, y, sample_rate=22050, format=fmt, subtype=subtype, block_frames=5000)
        assert one.getvalue() == blocks.getvalue()


def test_write_audio_argument_errors(tmp_path):
    y = np.zeros(100, dtype=np.float32)
    with pytest.raises(ConfigError, match="sample_rate=0"):
        write_audio(tmp_path / "a.wav", y, sample_rate=0)
    with pytest.raises(ConfigError, match="block_frames=0"):
        write_audio(tmp_path / "a.wav", y, sample_rate=8000, block_frames=0)
    with pytest.raises(ConfigError, match="format='WAV', subtype='VORBIS'"):
        write_audio(tmp_path / "a.wav", y, sample_rate=8000, format="WAV", subtype="VORBIS")
    with pytest.raises(ConfigError, match="floating numpy array"):
        write_audio(tmp_path / "a.wav", np.zeros(100, dtype=np.int16), sample_rate=8000)


@pytest.mark.slow
def test_ten_minute_ogg_vorbis_write(tmp_path):
    # One soundfile.write call of this overflows libvorbis's stack (SIGSEGV); block writes do not.
    sr, seconds = 44100, 600
    t = np.arange(seconds * sr, dtype=np.float32) / sr
    y = np.stack([0.3 * np.sin(2 * np.pi * 440.0 * t), 0.3 * np.sin(2 * np.pi * 660.0 * t)])
    del t
    path = tmp_path / "ten_minutes.ogg"
    write_audio(path, y, sample_rate=sr, format="OGG", subtype="VORBIS")
    del y
    info = probe(path)
    assert (info.frames, info.channels, info.sample_rate) == (seconds * sr, 2, sr)
    assert not ogg.ogg_status(path).truncated
    last, _ = load(path, offset=seconds - 1.0, channels=2)
    assert last.shape == (2, sr)
    assert abs(peak_hz(last[1], sr) - 660.0) < 2


def test_loading_warns_only_with_a_warning(tmp_path):
    path = tmp_path / "fine.ogg"
    write_audio(path, chirp(44100), sample_rate=44100, format="OGG", subtype="VORBIS")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(path)
