"""Tracks reach the local engine's workers costliest first (issue 10: a 6-minute track started
last on one worker while the other idles). Beam's local engine gives each worker a fixed share of
a stage's input, so every worker gets a copy of the listing and computes the tracks it claims
first, in the order :func:`claim_order` gives (duration from the header times the codec's cost)."""
import threading

import numpy as np
import soundfile as sf

from mirdl.pipelines.corpus import Track
from mirdl.pipelines.precompute import claim_order, claimed_tracks

SR = 8000


def _silent_wavs(folder, durations, *, digits):
    """One silent WAV track per duration (seconds), ids ``t0``, ``t1``, ... (``digits`` wide)."""
    tracks = []
    for i, seconds in enumerate(durations):
        path = folder / f"t{i:0{digits}d}.wav"
        sf.write(path, np.zeros(int(seconds * SR), np.float32), SR)
        tracks.append(Track(track_id=path.stem, path=str(path)))
    return tracks


def _order(tracks):
    rank = claim_order(tracks)
    return sorted(rank, key=rank.get)


def test_the_longest_tracks_come_first_whatever_the_listing_order(tmp_path):
    # The listing order that gave 2 workers 1.46x: short and long files alternating, the longest last.
    durations = [3, 4.5, 3, 6, 3, 4, 9, 3, 5, 18, 3, 36]
    tracks = _silent_wavs(tmp_path, durations, digits=2)
    order = _order(tracks)
    assert sorted(order) == [track.track_id for track in tracks]
    assert [durations[int(track_id[1:])] for track_id in order] == sorted(durations, reverse=True)
    assert order[:3] == ["t11", "t09", "t06"]
    assert [t for t in order if durations[int(t[1:])] == 3] == ["t00", "t02", "t04", "t07", "t10"]  # ties by id
    assert claim_order(list(reversed(tracks))) == claim_order(tracks)


def test_unreadable_files_are_ranked_by_size_then_id(tmp_path):
    # A file that cannot be probed counts as its size (16 kB a second); a missing one as nothing.
    (tmp_path / "big.wav").write_bytes(b"not audio" * 4000)
    (tmp_path / "small.wav").write_bytes(b"not audio")
    tracks = [Track(track_id=name, path=str(tmp_path / f"{name}.wav")) for name in ("missing", "small", "big", "gone")]
    assert _order(tracks) == ["big", "small", "gone", "missing"]


def test_a_costly_codec_comes_before_longer_cheap_files(tmp_path):
    # Opus decodes ~6-8x slower than PCM per second of audio: 10 s of Opus is more work than a
    # 20 s WAV file, and comes first (by duration alone it would come last).
    rate = 16000
    y = (0.1 * np.sin(2 * np.pi * 440 * np.arange(10 * rate) / rate)).astype(np.float32)
    tracks = [Track(track_id="z_opus", path=str(tmp_path / "opus.opus"))]
    sf.write(tracks[0].path, y, rate, format="OGG", subtype="OPUS")
    for i in range(3):
        path = tmp_path / f"w{i}.wav"
        sf.write(path, np.zeros(20 * rate, np.float32), rate)
        tracks.append(Track(track_id=f"w{i}", path=str(path)))
    assert _order(tracks) == ["z_opus", "w0", "w1", "w2"]


def test_flac_weighs_twice_wav(tmp_path):
    # FLAC decodes at about half PCM WAV's speed (both PCM_16 to libsndfile: the container tells
    # them apart): of two 30 s files the FLAC one comes first (by duration alone, ties by id, last).
    rate = 16000
    tracks = [Track(track_id="z_flac", path=str(tmp_path / "a.flac"))]
    sf.write(tracks[0].path, np.zeros(30 * rate, np.float32), rate, format="FLAC", subtype="PCM_16")
    path = tmp_path / "w.wav"
    sf.write(path, np.zeros(30 * rate, np.float32), rate, subtype="PCM_16")
    tracks.append(Track(track_id="a_wav", path=str(path)))
    assert _order(tracks) == ["z_flac", "a_wav"]


def test_workers_claim_each_track_once_costliest_first_and_share_as_they_go(tmp_path):
    """Each worker gets a copy of the listing and computes the tracks it claims first
    (`claimed_tracks`): every track once, in the costliest-first order, and a worker held up on a
    long track leaves the rest to the other (fixed buckets made it wait for the slow one)."""
    tracks = _silent_wavs(tmp_path, [36, 3, 18, 4.5, 3, 9], digits=1)
    rank = claim_order(tracks)
    assert sorted(rank, key=rank.get) == ["t0", "t2", "t5", "t3", "t1", "t4"]  # longest first, ties by id
    claims = tmp_path / "claims"
    claims.mkdir()
    done = {0: [], 1: []}
    first_taken, rest_taken = threading.Event(), threading.Event()

    def worker(copy):
        for track in claimed_tracks((copy, list(reversed(tracks))), rank=rank, claims=str(claims)):
            done[copy].append(track.track_id)
            if copy == 0:  # the long track: the other worker computes everything else meanwhile
                first_taken.set()
                assert rest_taken.wait(timeout=30)
        if copy == 1:
            rest_taken.set()

    slow = threading.Thread(target=worker, args=(0,))
    slow.start()
    assert first_taken.wait(timeout=30)
    worker(1)
    slow.join(timeout=30)
    assert done == {0: ["t0"], 1: ["t2", "t5", "t3", "t1", "t4"]}
    assert len(list(claims.iterdir())) == len(tracks)  # one claim a track
