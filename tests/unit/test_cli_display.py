"""What `trackflow demo` and `status` print of a track's outputs: many files as one row each for
the artwork and for the HLS ladder."""

from __future__ import annotations

from rich.console import Console

from trackflow.cli.display import outputs_table


def _text(table: object) -> str:
    console = Console(width=160, record=True)
    console.print(table)
    return console.export_text()


def test_the_ladder_and_the_artwork_show_as_one_row_each():
    media = "s3://media/tracks/ada/t"
    track = {
        "outputs": {
            "artwork/500.jpg": f"{media}/artwork/500.jpg",
            "artwork/500@2x.webp": f"{media}/artwork/500@2x.webp",
            "audio/128.mp3": f"{media}/audio/128.mp3",
        },
        "stream": {
            "folder": "hls/0a1b",
            "playlists": {
                "master.m3u8": f"{media}/hls/0a1b/master.m3u8",
                "aac160/index.m3u8": f"{media}/hls/0a1b/aac160/index.m3u8",
            },
            "variants": [
                {"codec": "aac", "bitrate_kbps": 160, "segments": 3},
                {"codec": "opus", "bitrate_kbps": 96, "segments": 3},
            ],
        },
    }
    text = _text(outputs_table(track))
    assert "HLS ladder: AAC 160 kbps (3 segments), Opus 96 kbps (3 segments)" in text
    assert f"{media}/hls/0a1b/master.m3u8" in text and "index.m3u8" not in text
    assert "artwork (2 files" in text and "audio/128.mp3" in text
