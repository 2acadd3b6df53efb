"""The synthetic corpus: deterministic, labels and annotations that agree with the audio, and a
class signal that needs more than a trivial feature."""
import csv
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirdl.features import ogg, synth
from mirdl.features.audio import load
from mirdl.errors import AudioError, ConfigError
from mirdl.features.representations import logmel
from mirdl.features.synth import CLASSES, ODD_FILES, TAGS, TARGETS, synth_track, write_corpus

ENVELOPE_HOP = 0.002  # s


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def corpus_files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def level_db(y, sr, start, stop):
    """Mean power of ``y[start:stop]`` (seconds) in dB."""
    segment = y[max(int(start * sr), 0):int(stop * sr)]
    return 10 * np.log10(np.mean(segment**2) + 1e-12)


def energy_db(y, sr, *, hop=ENVELOPE_HOP, window=0.005):
    """Short-time energy in dB, one value every ``hop`` seconds (frame k centred at k * hop)."""
    h, w = int(hop * sr), int(window * sr)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, (w // 2, w)), w)[::h]
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def peak_midi(segment, sr):
    """MIDI pitch of the strongest spectral peak of a segment (Hann window, 8x zero padding)."""
    n_fft = 1 << int(np.ceil(np.log2(8 * len(segment))))
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment)), n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    spectrum[freqs < 25] = 0
    return 69 + 12 * np.log2(freqs[np.argmax(spectrum)] / 440)


def track_rows(listing):
    """(CorpusTrack, mono audio at the file's rate, onsets read from the CSV, notes from the CSV)."""
    for track in listing.tracks:
        y, sr = load(listing.root / track.path)
        onsets = [float(row["time"]) for row in read_csv(listing.root / track.onsets_path)]
        notes = [(float(r["onset"]), float(r["offset"]), float(r["midi"]))
                 for r in read_csv(listing.root / track.notes_path)]
        yield track, y, sr, onsets, notes


# --------------------------------------------------------------------------------------------------
# determinism


def test_same_seed_writes_byte_identical_files_of_every_format(tmp_path):
    # Bit identity is the promise on one machine; another SIMD instruction set may change the last bits.
    first = write_corpus(tmp_path / "a", n_tracks=6, seed=3, duration=1.0)
    write_corpus(tmp_path / "b", n_tracks=6, seed=3, duration=1.0)
    assert {t.format for t in first.tracks} == {"wav", "flac", "ogg"}
    files_a, files_b = corpus_files(tmp_path / "a"), corpus_files(tmp_path / "b")
    assert files_a.keys() == files_b.keys()
    assert [name for name in files_a if files_a[name] != files_b[name]] == []


def test_a_smaller_corpus_is_a_prefix_of_a_larger_one(tmp_path):
    big = write_corpus(tmp_path / "big", n_tracks=5, seed=3, duration=1.0)
    small = write_corpus(tmp_path / "small", n_tracks=2, seed=3, duration=1.0)
    for track in small.tracks:
        assert (small.root / track.path).read_bytes() == (big.root / track.path).read_bytes()


def test_different_seed_gives_different_audio_same_layout(tmp_path):
    a = write_corpus(tmp_path / "a", n_tracks=4, seed=0, duration=1.0)
    b = write_corpus(tmp_path / "b", n_tracks=4, seed=1, duration=1.0)
    assert [t.path for t in a.tracks] == [t.path for t in b.tracks]  # classes/formats by index
    for ta, tb in zip(a.tracks, b.tracks):
        ya, _ = sf.read(a.root / ta.path)
        yb, _ = sf.read(b.root / tb.path)
        assert ya.shape != yb.shape or not np.allclose(ya, yb)
        assert ta.annotations != tb.annotations


def test_ogg_pages_have_one_fixed_serial_and_valid_checksums(synth_corpus):
    path = next(synth_corpus.root / t.path for t in synth_corpus.tracks if t.format == "ogg")
    data = path.read_bytes()
    serials, pos = set(), 0
    while pos < len(data):
        assert data[pos:pos + 4] == b"OggS"
        n_segments = data[pos + 26]
        end = pos + 27 + n_segments + sum(data[pos + 27:pos + 27 + n_segments])
        page = bytearray(data[pos:end])
        stored = int.from_bytes(page[22:26], "little")
        page[22:26] = b"\0\0\0\0"
        assert ogg.crc(bytes(page)) == stored
        serials.add(int.from_bytes(data[pos + 14:pos + 18], "little"))
        pos = end
    assert len(serials) == 1
    info = sf.info(path)
    assert info.frames == round(info.samplerate * 2.0)  # decodes to the end


def test_same_generator_state_gives_the_same_music_at_every_rate():
    low = synth_track(label="brass", rng=np.random.default_rng(5), sr=16000, duration=1.5)
    high = synth_track(label="brass", rng=np.random.default_rng(5), sr=44100, duration=1.5)
    assert low.annotations == high.annotations
    assert low.targets == high.targets and low.tags == high.tags
    assert len(low.audio) == 24000 and len(high.audio) == 66150


# --------------------------------------------------------------------------------------------------
# layout and tables


def test_classes_are_balanced_and_files_really_mix_formats_rates_and_channels(synth_corpus):
    root = synth_corpus.root
    labels = [t.label for t in synth_corpus.tracks]
    assert {label: labels.count(label) for label in CLASSES} == {label: 4 for label in CLASSES}
    infos = {t.path: sf.info(root / t.path) for t in synth_corpus.tracks}
    for track in synth_corpus.tracks:
        assert track.path == f"audio/{track.label}/{track.name}.{track.format}"
        info = infos[track.path]
        assert (info.samplerate, info.channels) == (track.sample_rate, track.channels)
        assert info.duration == pytest.approx(2.0, abs=1e-3)
    assert {info.format for info in infos.values()} == {"WAV", "FLAC", "OGG"}
    assert {info.samplerate for info in infos.values()} == {16000, 22050, 44100}
    assert {info.channels for info in infos.values()} == {1, 2}
    # Stereo files hold two different channels, not a copy.
    stereo = next(root / t.path for t in synth_corpus.tracks if t.channels == 2)
    y, _ = sf.read(stereo)
    assert not np.allclose(y[:, 0], y[:, 1], atol=1e-3)


def test_artists_are_groups_spanning_classes(synth_corpus):
    classes_of = {}
    for track in synth_corpus.tracks:
        classes_of.setdefault(track.artist, set()).add(track.label)
    assert len(classes_of) == 8
    assert sum(len(classes) > 1 for classes in classes_of.values()) >= 6


def test_csv_tables_parse_agree_with_the_listing_and_reference_existing_files(synth_corpus):
    root = synth_corpus.root
    labels = read_csv(root / "labels.csv")
    tags = read_csv(root / "tags.csv")
    targets = read_csv(root / "targets.csv")
    annotations = read_csv(root / "annotations.csv")
    expected_paths = [t.path for t in synth_corpus.tracks]
    for table in (labels, tags, targets, annotations):
        assert [row["path"] for row in table] == expected_paths
    assert list(targets[0]) == ["path", *TARGETS]
    for track, label_row, tag_row, target_row, annotation_row in zip(
            synth_corpus.tracks, labels, tags, targets, annotations):
        assert (root / label_row["path"]).is_file()
        assert (label_row["label"], label_row["artist"]) == (track.label, track.artist)
        tag_list = tag_row["tags"].split(";") if tag_row["tags"] else []
        assert set(tag_list) <= set(TAGS) and tuple(tag_list) == track.tags
        for name in TARGETS:
            assert math.isfinite(float(target_row[name]))
            assert float(target_row[name]) == pytest.approx(track.targets[name], abs=1e-4)
        onsets = read_csv(root / annotation_row["onsets"])
        notes = read_csv(root / annotation_row["notes"])
        times = [float(row["time"]) for row in onsets]
        assert times == sorted(times) and 0 < times[0] and times[-1] < track.duration
        assert times == pytest.approx(list(track.annotations.onsets), abs=5e-4)
        for row in notes:
            onset, offset, midi = float(row["onset"]), float(row["offset"]), float(row["midi"])
            assert onset in times and onset < offset <= track.duration and 33 <= midi <= 96
        assert (len(notes) == 0) == (track.label == "perc")
    readme = (root / "README.txt").read_text()
    assert "seed 0" in readme and all(name in readme for name in (*CLASSES, *TAGS, *TARGETS))


def test_tags_and_targets_follow_their_definitions(synth_corpus):
    for track, y, sr, onsets, _ in track_rows(synth_corpus):
        t = track.targets
        assert t["note_rate"] == pytest.approx(len(onsets) / track.duration, abs=1e-3)
        assert 60 <= t["tempo_bpm"] <= 334 and 0 <= t["brightness"] <= 1
        assert ("bright" in track.tags) == (t["brightness"] >= 0.55)
        assert ("dark" in track.tags) == (t["brightness"] < 0.35)
        assert ("dense" in track.tags) == (t["note_rate"] >= 3.0)
        assert ("sparse" in track.tags) == (t["note_rate"] < 1.5)
        # level_db is the peak before encoding: 16-bit rounding and lossy OGG move it a little.
        peak_db = 20 * np.log10(np.abs(sf.read(synth_corpus.root / track.path)[0]).max())
        assert peak_db == pytest.approx(t["level_db"], abs=0.1 if track.format != "ogg" else 1.5)


# --------------------------------------------------------------------------------------------------
# annotations agree with the audio


def test_onsets_line_up_with_energy_rises_within_20_ms(synth_corpus):
    """Sharp attacks (pluck, perc, brass): the 20 ms after an onset are >= 3 dB louder than the
    20 ms before it; moved 30 ms early or late, the same check fails, so the rise is within 20 ms."""
    rises = {shift: [] for shift in (0.0, -0.03, 0.03)}
    for track, y, sr, onsets, _ in track_rows(synth_corpus):
        if track.label == "pad":  # slow attacks: checked below
            continue
        for t in onsets:
            for shift, found in rises.items():
                at = t + shift
                if at + 0.02 <= track.duration:
                    found.append(level_db(y, sr, at, at + 0.02) - level_db(y, sr, at - 0.02, at) >= 3.0)
    assert len(rises[0.0]) >= 30
    assert np.mean(rises[0.0]) >= 0.9
    assert np.mean(rises[-0.03]) < 0.3 and np.mean(rises[0.03]) < 0.3


def test_every_onset_is_followed_by_an_energy_rise(synth_corpus):
    """Including pad's slow attacks: the 300 ms after an onset get louder than the 30 ms before."""
    rises = []
    for track, y, sr, onsets, _ in track_rows(synth_corpus):
        energy = energy_db(y, sr)
        for t in onsets:
            k = int(round(t / ENVELOPE_HOP))
            before = energy[max(k - 15, 0):k].mean() if k > 0 else energy[0]
            rises.append(energy[k:k + 150].max() - before)
    assert np.mean(np.array(rises) > 1.0) >= 0.9
    assert np.median(rises) > 10.0


def test_note_pitch_matches_the_spectral_peak_for_pad_and_brass(synth_corpus):
    """After the attack, the strongest spectral peak is the fundamental of a note sounding then."""
    errors = []
    for track, y, sr, _, notes in track_rows(synth_corpus):
        if track.label not in ("pad", "brass"):
            continue
        settle = 0.4 if track.label == "pad" else 0.1  # longest attack of the class
        for onset, offset, _ in notes:
            start, stop = max(onset + settle, onset + 0.5 * (offset - onset)), offset
            if stop - start < 0.1:
                continue
            # Notes sounding in the segment, counting their release and the room's tail.
            sounding = [midi for on, off, midi in notes if on < stop and off + 0.45 > start]
            measured = peak_midi(y[int(start * sr):int(stop * sr)], sr)
            errors.append(min(abs(measured - midi) for midi in sounding))
    assert len(errors) >= 10
    assert np.mean(np.array(errors) <= 0.5) >= 0.9
    assert np.median(errors) <= 0.2


def test_a_first_note_has_its_annotated_pitch():
    """The strict form, straight from the synthesiser: until the next onset only the first note (or
    chord) sounds, and its strongest peak is that note's fundamental."""
    tested = 0
    for label in ("pad", "brass"):
        for seed in range(4):
            track = synth_track(label=label, rng=np.random.default_rng(seed), sr=16000, duration=3.0)
            onset, offset, _ = track.annotations.notes[0]
            later = [on for on, _, _ in track.annotations.notes if on > onset]
            start, stop = onset + (0.4 if label == "pad" else 0.1), min([offset, *later])
            if stop - start < 0.1:
                continue
            chord = [midi for on, _, midi in track.annotations.notes if on == onset]
            measured = peak_midi(track.audio[int(start * 16000):int(stop * 16000)], 16000)
            assert min(abs(measured - midi) for midi in chord) <= 0.5, (label, seed, chord, measured)
            tested += 1
    assert tested >= 3


# --------------------------------------------------------------------------------------------------
# the class signal


@pytest.mark.slow
def test_a_trivial_feature_cannot_tell_the_classes_but_log_mel_statistics_can():
    """RMS or mean spectral centroid with a 1-D nearest-centroid classifier stays near chance (0.25)
    even scored on its own training data; cepstral statistics of the log-mel (MFCC-like mean, std
    and mean |delta| of 19 coefficients) with a ridge classifier, cross-validated by artist, do
    much better. 64 tracks of 1.5 s."""
    sr, n_tracks = 16000, 64
    labels, artists, rms_db, centroid, stats = [], [], [], [], []
    for i in range(n_tracks):
        rng = np.random.default_rng(np.random.SeedSequence(11, spawn_key=(i,)))
        artist = (i + i // 4) % 8  # as write_corpus assigns them: every artist plays every class
        track = synth_track(label=CLASSES[i % 4], rng=rng, sr=sr, duration=1.5, artist=f"artist_{artist}")
        labels.append(i % 4)
        artists.append(artist)
        rms_db.append(10 * np.log10(np.mean(track.audio**2)))
        log_mel = logmel(track.audio, sr=sr, n_fft=1024, hop_length=512, n_mels=40)
        power = 10 ** (log_mel / 10)
        centroid.append(np.log(np.mean((power * np.arange(40)[:, None]).sum(0) / power.sum(0))))
        cepstra = scipy.fft.dct(log_mel, axis=0, norm="ortho")[1:20]
        stats.append(np.concatenate([cepstra.mean(1), cepstra.std(1), np.abs(np.diff(cepstra, axis=1)).mean(1)]))
    labels, artists, stats = np.array(labels), np.array(artists), np.array(stats)

    def nearest_centroid_in_sample(x):
        x = np.asarray(x)
        means = np.array([x[labels == c].mean() for c in range(4)])
        return float(np.mean(np.argmin(np.abs(x[:, None] - means), axis=1) == labels))

    def ridge_by_artist(x, *, penalty=10.0):
        correct = []
        for fold in range(4):  # 2 held-out artists per fold
            test = artists % 4 == fold
            mean, std = x[~test].mean(0), x[~test].std(0)
            design = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
            weights = np.linalg.solve(design[~test].T @ design[~test] + penalty * np.eye(design.shape[1]),
                                      design[~test].T @ np.eye(4)[labels[~test]])
            correct.extend(np.argmax(design[test] @ weights, axis=1) == labels[test])
        return float(np.mean(correct))

    trivial = max(nearest_centroid_in_sample(rms_db), nearest_centroid_in_sample(centroid))
    learned = ridge_by_artist(stats)
    print(f"trivial {trivial:.3f}, log-mel statistics {learned:.3f}")
    assert trivial < 0.6
    assert learned >= 0.65 and learned >= trivial + 0.2, (trivial, learned)


# --------------------------------------------------------------------------------------------------
# properties and errors


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(label=st.sampled_from(CLASSES), seed=st.integers(0, 2**32 - 1), duration=st.floats(0.5, 1.5),
       sr=st.sampled_from([16000, 22050]), channels=st.sampled_from([1, 2]))
def test_any_track_is_finite_at_its_level_with_annotations_inside_it(label, seed, duration, sr, channels):
    track = synth_track(label=label, rng=np.random.default_rng(seed), sr=sr, duration=duration,
                        channels=channels)
    assert track.audio.dtype == np.float32 and np.isfinite(track.audio).all()
    assert track.audio.shape == ((round(duration * sr),) if channels == 1 else (2, round(duration * sr)))
    assert 20 * np.log10(np.abs(track.audio).max()) == pytest.approx(track.targets["level_db"], abs=1e-3)
    assert track.annotations.onsets and all(0 < t < duration for t in track.annotations.onsets)
    assert all(on < off <= round(duration, 3) + 1e-9 for on, off, _ in track.annotations.notes)
    assert set(track.tags) <= set(TAGS) and set(track.targets) == set(TARGETS)


@pytest.mark.parametrize("kwargs, match", [
    ({"label": "violin"}, "label='violin'"),
    ({"sr": 8000}, "sr=8000"),
    ({"duration": 0.1}, "duration=0.1"),
    ({"channels": 3}, "channels=3"),
])
def test_synth_track_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        synth_track(**{"label": "pad", "rng": np.random.default_rng(0), **kwargs})


@pytest.mark.parametrize("kwargs, match", [
    ({"n_tracks": 0}, "n_tracks=0"),
    ({"n_tracks": 2, "formats": ("mp3",)}, "formats="),
    ({"n_tracks": 2, "sample_rates": (8000,)}, "sr=8000"),
    ({"n_tracks": 2, "stereo_fraction": 1.5}, "stereo_fraction=1.5"),
])
def test_write_corpus_rejects_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        write_corpus(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_write_corpus_refuses_a_non_empty_directory_and_overwrites_only_a_corpus(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        write_corpus(other, n_tracks=1, duration=0.5)
    with pytest.raises(ConfigError, match="not a synthetic corpus"):
        write_corpus(other, n_tracks=1, duration=0.5, overwrite=True)
    assert (other / "notes.txt").read_text() == "mine"

    corpus = tmp_path / "corpus"
    write_corpus(corpus, n_tracks=2, duration=0.5)
    write_corpus(corpus, n_tracks=1, duration=0.5, seed=4, overwrite=True)
    assert [row["path"] for row in read_csv(corpus / "labels.csv")] == ["audio/pluck/t0000.wav"]
    assert not (corpus / "audio" / "pad").exists()  # replaced, not merged


def test_an_interrupted_write_leaves_nothing_behind(tmp_path, monkeypatch):
    real = synth.synth_track
    calls = []

    def failing(**kwargs):
        calls.append(kwargs["label"])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(**kwargs)

    monkeypatch.setattr(synth, "synth_track", failing)
    with pytest.raises(KeyboardInterrupt):
        write_corpus(tmp_path / "corpus", n_tracks=4, duration=0.5)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# odd files


@pytest.mark.parametrize("name", sorted(ODD_FILES))
def test_odd_files_decode_or_fail_as_documented(odd_audio, name):
    path = odd_audio[name]
    assert path.name == ODD_FILES[name][0]
    if ODD_FILES[name][1]:
        y, sr = load(path, sample_rate=22050)
        assert y.ndim == 1 and len(y) > 0 and np.isfinite(y).all()
    else:
        with pytest.raises(AudioError, match=path.name):
            load(path, sample_rate=22050)


def test_odd_files_are_what_their_names_say(odd_audio):
    assert odd_audio["empty"].stat().st_size == 0
    assert sf.info(odd_audio["six_channel"]).channels == 6
    assert (sf.info(odd_audio["rate_8k"]).samplerate, sf.info(odd_audio["rate_8k"]).subtype) == (8000, "PCM_16")
    hires = sf.info(odd_audio["hires"])
    assert (hires.samplerate, hires.subtype) == (96000, "PCM_24")
    assert sf.info(odd_audio["short"]).frames < 1024
    assert np.isnan(sf.read(odd_audio["nan"])[0]).any()
    assert not np.any(sf.read(odd_audio["silence"])[0])
    with pytest.raises(AudioError, match="truncated"):
        load(odd_audio["truncated"])
    # The cut Ogg files: libsndfile alone opens both as whole files; their pages say otherwise.
    for name, problem in (("ogg_cut_at_page", "no end-of-stream flag"), ("opus_cut_in_page", "ends inside an Ogg page")):
        assert sf.info(str(odd_audio[name])).frames > 0
        status = ogg.ogg_status(odd_audio[name])
        assert status.codec == ("vorbis" if name.startswith("ogg") else "opus") and status.pages >= 3
        assert problem in status.problem()


def test_odd_files_are_the_same_bytes_every_time(odd_audio, tmp_path):
    again = synth.odd_files(tmp_path)
    for name, path in odd_audio.items():
        assert again[name].read_bytes() == path.read_bytes(), name


def test_write_pyav_is_reproducible_and_decodes(tmp_path):
    y = np.sin(2 * np.pi * 440.0 * np.arange(22050) / 22050).astype(np.float32) * 0.5
    first, second = tmp_path / "a.m4a", tmp_path / "b.m4a"
    synth.write_pyav(first, y, sample_rate=22050, codec="aac")
    synth.write_pyav(second, y, sample_rate=22050, codec="aac")
    assert first.read_bytes() == second.read_bytes()
    y_hat, _ = load(first)
    assert y_hat.shape == y.shape
    with pytest.raises(ConfigError, match="codec='nonesuch'"):
        synth.write_pyav(tmp_path / "c.m4a", y, sample_rate=22050, codec="nonesuch")
    with pytest.raises(ConfigError, match="shape"):
        synth.write_pyav(tmp_path / "d.m4a", np.zeros((3, 10), dtype=np.float32), sample_rate=22050, codec="aac")


@pytest.mark.slow
def test_a_long_stereo_ogg_corpus_writes_without_crashing(tmp_path):
    # `mirdl synth-corpus OUT --tracks 8 --seed 3 --duration 60` died with SIGSEGV inside
    # soundfile.write (a minute of 44.1 kHz stereo Ogg Vorbis in one call), leaving .OUT.tmp-* behind.
    from mirdl.cli import main

    out = tmp_path / "OUT"
    assert main(["synth-corpus", str(out), "--tracks", "8", "--seed", "3", "--duration", "60"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["OUT"]
    oggs = sorted(out.glob("audio/*/*.ogg"))
    assert oggs and any(sf.info(str(path)).channels == 2 or sf.info(str(path)).samplerate == 44100 for path in oggs)
    for path in sorted(out.glob("audio/*/*.*")):
        info = sf.info(str(path))
        assert info.frames == round(60 * info.samplerate), path.name
    for path in oggs:
        assert not ogg.ogg_status(path).truncated
