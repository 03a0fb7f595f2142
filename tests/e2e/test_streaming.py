"""The HLS ladder on the whole stack: a published track's master playlist, fetched as a player
fetches it (no Authorization header), names variants whose segments are signed URLs that
decode to the track; someone else's token or a stale link plays nothing."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import m3u8
import pytest
from mutagen.id3 import ID3

from tests.support.stack import client_for, upload_and_wait
from trackflow.media import ffmpeg
from trackflow.media.samples import SampleTrack, write_track
from trackflow.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("stack")]


def _decoded_seconds(url: str) -> float:
    """What ffmpeg's own HLS demuxer decodes from a playlist URL."""
    return ffmpeg.run(["-i", url, "-map", "0:a:0", "-f", "null", "-"], timeout=120).out_time_s


def test_a_published_track_streams_its_ladder_privately(settings: Settings, tmp_path: Path):
    owner = client_for(settings, "e2e-stream")
    path = write_track(
        SampleTrack("Stream Song", "Tester", seconds=14, seed=8181), tmp_path / "s.mp3"
    )
    track = upload_and_wait(owner, path)
    assert track["status"] == "published", track.get("error")
    assert track["steps"]["stream_ladder"]["status"] == "succeeded"
    assert [v["name"] for v in track["stream"]["variants"]] == ["aac160", "aac96", "opus96"]
    gains = {g["target_lufs"]: g["gain_db"] for g in track["loudness"]["playback"]["gains"]}
    assert set(gains) == {-14.0, -16.0, -23.0}

    playback = owner.request("GET", f"/v1/tracks/{track['track_id']}/playback")
    assert [v["codecs"] for v in playback["stream"]] == ["mp4a.40.2", "mp4a.40.2", "opus"]
    answer = httpx.get(playback["hls"], headers={"Accept-Encoding": "gzip"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    assert answer.headers["content-encoding"] == "gzip"
    assert answer.headers["cache-control"] == "no-store"  # the URIs are this viewer's
    master = m3u8.loads(answer.text, uri=playback["hls"])
    assert master.is_variant and len(master.playlists) == 3
    for variant in master.playlists:
        media = m3u8.loads(httpx.get(variant.absolute_uri).text)
        assert media.playlist_type == "vod" and media.is_endlist and media.is_independent_segments
        init = httpx.get(media.segment_map[0].uri)
        assert init.status_code == 200 and init.content[4:8] == b"ftyp"
        for segment in media.segments:
            assert httpx.head(segment.uri).status_code == 200  # each URI signed on its own
        # a player's clock: what decodes through the playlist is the track, to a frame
        assert _decoded_seconds(variant.absolute_uri) == pytest.approx(
            track["stream"]["duration_s"], abs=0.025
        )

    # the MP3s carry ReplayGain 2.0
    mp3 = tmp_path / "128.mp3"
    mp3.write_bytes(httpx.get(playback["renditions"]["128"]).content)
    assert ID3(mp3).getall("TXXX:REPLAYGAIN_TRACK_GAIN")[0].text[0].endswith(" dB")

    # the link is this track's: a token for it does not open another's playlists, and a
    # tampered one opens nothing
    stranger = httpx.get(playback["hls"].replace(track["track_id"], "0" * 32))
    assert stranger.status_code == 401
    tampered = httpx.get(playback["hls"][:-3] + "xyz")
    assert tampered.status_code == 401
    # reprocessed, the ladder goes to a new folder (no CDN mixes two runs' segments), and the
    # record and the links follow it
    assert owner.request("POST", f"/v1/tracks/{track['track_id']}/reprocess")["status"]
    again = owner.wait(track["track_id"], timeout_s=240)
    assert again["status"] == "published", again.get("error")
    assert again["stream"]["folder"] != track["stream"]["folder"]
    relinked = owner.request("GET", f"/v1/tracks/{track['track_id']}/playback")["hls"]
    variant = m3u8.loads(httpx.get(relinked).text, uri=relinked).playlists[0].absolute_uri
    segments = m3u8.loads(httpx.get(variant).text).segments
    assert f"/{again['stream']['folder']}/" in segments[0].uri
    # signing out everywhere ends the links made before, as it ends the bearer tokens
    owner.request("DELETE", "/v1/me/tokens")
    revoked = httpx.get(playback["hls"])
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]
    time.sleep(1.1)  # tokens issued from the next second on are accepted
    owner = client_for(settings, "e2e-stream")
    link = owner.request("GET", f"/v1/tracks/{track['track_id']}/playback")["hls"]
    assert httpx.get(link).status_code == 200
    # once deleted, its playlists are gone for everyone holding a link
    owner.request("DELETE", f"/v1/tracks/{track['track_id']}")
    assert httpx.get(link).status_code == 404
