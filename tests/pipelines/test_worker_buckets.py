"""Tracks reach the local engine's workers in buckets of equal audio (issue 10: a 6-minute track
on one worker while the other idles). Beam's multi-process engine gives each worker a fixed share
of a stage's input, so the share is decided in the driver by :func:`balance_tracks`."""
import numpy as np
import soundfile as sf

from mirdl.pipelines.corpus import Track
from mirdl.pipelines.precompute import balance_tracks

SR = 8000


def test_long_and_short_tracks_are_split_into_equal_audio(tmp_path):
    # The order that gave 2 workers 1.46x: listing order alternating short and long files, so
    # taking every other track put the long ones on one worker (260 s against 715 s).
    durations = [3, 4.5, 3, 6, 3, 4, 9, 3, 5, 18, 3, 36]
    tracks = []
    for i, seconds in enumerate(durations):
        path = tmp_path / f"t{i:02d}.wav"
        sf.write(path, np.zeros(int(seconds * SR), np.float32), SR)
        tracks.append(Track(track_id=f"t{i:02d}", path=str(path)))
    every_other = [sum(durations[k::2]) for k in range(2)]
    assert max(every_other) / min(every_other) > 2.5  # what the random/round-robin split gave
    bucket_of = balance_tracks(tracks, 2)
    assert sorted(bucket_of) == [track.track_id for track in tracks]
    loads = [sum(d for d, t in zip(durations, tracks) if bucket_of[t.track_id] == b) for b in range(2)]
    assert abs(loads[0] - loads[1]) <= 3  # the 36 s track alone in one bucket, the rest in the other
    assert balance_tracks(list(reversed(tracks)), 2) == bucket_of  # independent of the listing order


def test_unreadable_and_equal_files_still_spread_over_every_bucket(tmp_path):
    tracks = [Track(track_id=f"x{i}", path=str(tmp_path / f"missing{i}.wav")) for i in range(7)]
    counts = np.bincount(list(balance_tracks(tracks, 3).values()), minlength=3)
    assert sorted(counts) == [2, 2, 3]


def test_buckets_weigh_a_costly_codec_above_its_duration(tmp_path):
    # Opus decodes ~6x slower than PCM per second of audio: 10 s of Opus is about the work of
    # three 20 s WAV files, so it gets a bucket of its own (by duration alone: 50 s against 40 s).
    rate = 16000
    y = (0.1 * np.sin(2 * np.pi * 440 * np.arange(10 * rate) / rate)).astype(np.float32)
    tracks = [Track(track_id="opus", path=str(tmp_path / "opus.opus"))]
    sf.write(tracks[0].path, y, rate, format="OGG", subtype="OPUS")
    for i in range(3):
        path = tmp_path / f"w{i}.wav"
        sf.write(path, np.zeros(20 * rate, np.float32), rate)
        tracks.append(Track(track_id=f"w{i}", path=str(path)))
    bucket_of = balance_tracks(tracks, 2)
    assert sorted(t for t in bucket_of if bucket_of[t] == bucket_of["opus"]) == ["opus"]


def test_flac_weighs_twice_wav(tmp_path):
    # FLAC decodes at about half PCM WAV's speed (both PCM_16 to libsndfile: the container tells
    # them apart): 30 s of FLAC is the work of two 30 s WAV files, so it gets a bucket of its own
    # (by duration alone it would share one with a WAV file: 60 s against 30 s).
    rate = 16000
    tracks = [Track(track_id="flac", path=str(tmp_path / "a.flac"))]
    sf.write(tracks[0].path, np.zeros(30 * rate, np.float32), rate, format="FLAC", subtype="PCM_16")
    for i, seconds in enumerate((30, 30)):
        path = tmp_path / f"w{i}.wav"
        sf.write(path, np.zeros(seconds * rate, np.float32), rate, subtype="PCM_16")
        tracks.append(Track(track_id=f"w{i}", path=str(path)))
    bucket_of = balance_tracks(tracks, 2)
    assert sorted(t for t in bucket_of if bucket_of[t] == bucket_of["flac"]) == ["flac"]


def test_workers_claim_each_track_once_costliest_first_and_share_as_they_go(tmp_path):
    """Each worker gets a copy of the listing and computes the tracks it claims first
    (`claimed_tracks`): every track once, in the costliest-first order, and a worker held up on a
    long track leaves the rest to the other (fixed buckets made it wait for the slow one)."""
    import threading

    from mirdl.pipelines.precompute import claim_order, claimed_tracks

    durations = [36, 3, 18, 4.5, 3, 9]
    tracks = []
    for i, seconds in enumerate(durations):
        path = tmp_path / f"t{i}.wav"
        sf.write(path, np.zeros(int(seconds * SR), np.float32), SR)
        tracks.append(Track(track_id=f"t{i}", path=str(path)))
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
