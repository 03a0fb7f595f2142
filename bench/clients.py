"""What client apps wait for, on the embedded emulator (`make bench-clients`).

1. A large upload in parts, interrupted and resumed: the uploader is killed (SIGKILL, as a
   laptop closing or a phone losing the network would leave it) once about half the file is in
   S3, then run again on the same file. The bench prints the time of the whole upload against
   the same file sent uninterrupted, the parts S3 already held when it resumed, and the bytes
   sent twice (the parts in flight when it was killed).
2. Webhook delivery latency on an idle stack: from a track's publication (its record's
   ``published_at``) to the ``track.published`` event arriving at a receiver on the loopback.

Both go through the product's own client code (``trackflow.cli.client``) and API on a stack of
their own (fresh state, free ports). The upload's bytes cross the loopback, so its times are
an upper bound of the client's own work, not a network figure.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

MIB = 1024**2


def make_large_file(folder: Path, size: int) -> Path:
    """A studio WAV (96 kHz, 24-bit stereo) of about ``size`` bytes: a minute of music looped,
    as a large lossless upload is."""
    from bench.media import make_inputs
    from trackflow.media.ffmpeg import ffmpeg_exe

    loop, _ = make_inputs(folder, 1.0, seed=4242)
    seconds = size / (96_000 * 2 * 3)
    path = folder / "large.wav"
    subprocess.run(
        [
            *(ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "-1"),
            *("-i", str(loop), "-t", f"{seconds:.3f}", "-map", "0:a", "-ar", "96000"),
            *("-c:a", "pcm_s24le", str(path)),
        ],
        check=True,
    )
    return path


def _send(api_url: str, token: str, path: str, sent: Any, held: Any) -> None:
    """The uploader, in a process of its own so that it can be killed mid-way: create (or
    resume) the upload of ``path`` and send its parts, adding each byte pushed to ``sent`` and
    the number of parts S3 held when it began to ``held``."""
    from trackflow.cli.client import ApiClient
    from trackflow.cli.progress import resume_state_path

    client = ApiClient(api_url, token)
    state = resume_state_path(Path(path))
    if state.exists():
        track_id = json.loads(state.read_text())["track_id"]
    else:
        track_id = client.create_upload(Path(path))["track_id"]
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"track_id": track_id}))
    listing = client.parts(track_id)
    held.value = len(listing["uploaded"])
    already = listing["uploaded_bytes"]

    def pushed(n: int) -> None:
        nonlocal already
        if already:  # the held parts, counted at once by send_parts: not sent again
            already -= n
            return
        with sent.get_lock():
            sent.value += n

    client.send_parts(track_id, Path(path), pushed)
    state.unlink()


class Uploader(NamedTuple):
    wall_s: float
    sent_bytes: int  # pushed to S3 by this run
    held_parts: int  # in S3 when it began
    killed: bool


def _run_uploader(
    api_url: str, token: str, path: Path, *, kill_at_bytes: int | None = None
) -> Uploader:
    """One uploader process, killed once it pushed ``kill_at_bytes`` if that is given."""
    context = multiprocessing.get_context("spawn")
    sent, held = context.Value("q", 0), context.Value("i", 0)
    process = context.Process(target=_send, args=(api_url, token, str(path), sent, held))
    started = time.perf_counter()
    process.start()
    killed = False
    while process.is_alive():
        if kill_at_bytes is not None and sent.value >= kill_at_bytes:
            process.kill()
            killed = True
            break
        time.sleep(0.02)
    process.join()
    if not killed and process.exitcode != 0:
        raise RuntimeError(f"the uploader failed (exit {process.exitcode})")
    return Uploader(time.perf_counter() - started, int(sent.value), int(held.value), killed)


def resumed_upload(api_url: str, token: str, path: Path, part_size: int) -> dict[str, Any]:
    """The same file uploaded whole, then killed half-way and resumed."""
    from trackflow.cli.client import ApiClient

    size = path.stat().st_size
    client = ApiClient(api_url, token)
    whole = _run_uploader(api_url, token, path)
    uploaded = time.time()
    first_track = _newest_track(client)
    # processed before the next upload starts, so that the two do not share the cores
    first_track = client.wait(first_track["track_id"], timeout_s=1800)
    processed_s = datetime.fromisoformat(first_track["finished_at"]).timestamp() - uploaded
    path.touch()  # a new modification time: a new upload, not a resumption of the first
    first = _run_uploader(api_url, token, path, kill_at_bytes=size // 2)
    if not first.killed:
        raise RuntimeError("the upload finished before it could be interrupted")
    second = _run_uploader(api_url, token, path)
    parts = math.ceil(size / part_size)
    return {
        "size_mib": round(size / MIB),
        "part_mib": round(part_size / MIB),
        "parts": parts,
        "uninterrupted_s": round(whole.wall_s, 1),
        "interrupted_s": round(first.wall_s, 1),
        "resumed_s": round(second.wall_s, 1),
        "held_at_resume": second.held_parts,
        "sent_after_resume": parts - second.held_parts,
        "resent_mib": round((first.sent_bytes + second.sent_bytes - size) / MIB, 1),
        "processed_s": round(processed_s, 1),
        "status": first_track["status"],
        "error": (first_track.get("error") or {}).get("code"),
    }


def _newest_track(client: Any) -> dict[str, Any]:
    return dict(client.request("GET", "/v1/tracks", params={"limit": 1})["tracks"][0])


def webhook_latency(client: Any, scratch: Path, tracks: int) -> list[float]:
    """Seconds from each track's publication to its event at the receiver, one track at a time
    on the idle stack."""
    from trackflow_devstack.receiver import WebhookReceiver

    from bench.e2e import wait_until_quiet
    from trackflow.media.samples import SampleTrack, write_track
    from trackflow.settings import get_settings

    latencies = []
    with WebhookReceiver() as receiver:
        client.request(
            "POST", "/v1/webhooks", json={"url": receiver.url, "events": ["track.published"]}
        )
        for n in range(tracks):
            path = write_track(
                SampleTrack(f"Hook {n}", "Bench", 6, 7100 + n), scratch / f"h{n}.mp3"
            )
            created = client.create_upload(path)
            client.send_file(created["upload"], path)
            track = client.wait(created["track_id"], timeout_s=300)
            if track["status"] != "published":
                raise RuntimeError(f"a webhook track ended {track['status']}")
            deadline = time.time() + 120
            while len(receiver.deliveries) <= n:
                if time.time() > deadline:
                    raise TimeoutError("the webhook never arrived")
                time.sleep(0.01)
            published = datetime.fromisoformat(track["published_at"]).timestamp()
            latencies.append(receiver.deliveries[n].arrived_at - published)
            wait_until_quiet(get_settings())
    return latencies


def main(argv: list[str] | None = None) -> int:
    from bench.e2e import use_own_stack

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upload-mib", type=int, default=1024, help="size of the large file")
    parser.add_argument("--webhook-tracks", type=int, default=5)
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="trackflow-bench-clients-"))
    use_own_stack(scratch)
    try:
        return run(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run(args: argparse.Namespace, scratch: Path) -> int:
    from trackflow_devstack.stack import Stack

    from trackflow.auth import mint_token
    from trackflow.cli.client import ApiClient
    from trackflow.settings import get_settings

    settings = get_settings()
    print(f"a {args.upload_mib} MiB file…", file=sys.stderr)
    large = make_large_file(scratch / "large", args.upload_mib * MIB)
    stack = Stack(settings, cores=os.cpu_count() or 2)
    stack.start(on_event=lambda message: print(f"  {message}", file=sys.stderr))
    try:
        token = mint_token(settings, "bench-clients")
        client = ApiClient(settings.api_url, token)
        print("webhook latency, one track at a time on the idle stack…", file=sys.stderr)
        latencies = webhook_latency(client, scratch, args.webhook_tracks)
        print("the large upload: whole, then killed half-way and resumed…", file=sys.stderr)
        upload = resumed_upload(settings.api_url, token, large, settings.multipart_part_bytes)
    finally:
        stack.stop()
    print(
        f"\nresumable upload of {upload['size_mib']} MiB in {upload['parts']} parts of "
        f"{upload['part_mib']} MiB (loopback, embedded emulator)"
    )
    print(f"  uninterrupted:             {upload['uninterrupted_s']:7.1f} s")
    print(f"  killed half-way after:     {upload['interrupted_s']:7.1f} s")
    print(f"  resumed, the rest in:      {upload['resumed_s']:7.1f} s")
    total = upload["interrupted_s"] + upload["resumed_s"]
    print(
        f"  interrupted + resumed:     {total:7.1f} s "
        f"({total / upload['uninterrupted_s']:.2f}x the uninterrupted upload)"
    )
    print(
        f"  parts held at resumption:  {upload['held_at_resume']:7d}; "
        f"sent after it: {upload['sent_after_resume']}"
    )
    print(
        f"  upload end to {upload['status']}: {upload['processed_s']:7.1f} s "
        f"{upload['error'] or '(downloaded, processed and published)'}"
    )
    print(
        f"  sent twice:                {upload['resent_mib']:7.1f} MiB "
        f"(the parts in flight when it was killed)"
    )
    print(f"\nwebhook delivery after publication, {len(latencies)} tracks, idle stack")
    print(
        f"  median {statistics.median(latencies):.2f} s, slowest {max(latencies):.2f} s "
        f"({', '.join(f'{s:.2f}' for s in latencies)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
