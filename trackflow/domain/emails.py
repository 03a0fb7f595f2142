"""The emails the uploader gets, one per outcome (published, rejected, failed), the link that
confirms a new address, and which address may receive them. Pure rendering and rules."""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

__all__ = [
    "ADVICE",
    "LOCAL_DOMAIN",
    "Email",
    "compose",
    "compose_endpoint_disabled",
    "compose_verification",
    "deliverable_address",
    "local_address",
]

# Every user's address until they give one: a mailbox of ours, so nobody else's inbox
LOCAL_DOMAIN = "users.trackflow.local"


_ENV = Environment(
    loader=PackageLoader("trackflow.domain", "templates/email"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)

ADVICE = {
    "unsupported_format": "upload MP3, FLAC, WAV, AIFF, Ogg Vorbis, Opus, M4A/AAC or ALAC audio.",
    "corrupt_audio": "export the file again from your audio software and upload the new file.",
    "too_short": "upload a recording of at least one second.",
    "too_long": "split the recording into parts under the length limit.",
    "no_audio_stream": "the file holds no audio; export the audio track and upload that.",
    "too_large": "compress the file (FLAC or a high-bitrate MP3) and upload it again.",
}
DEFAULT_ADVICE = "nothing on your side: we are looking into it; you can upload again later."


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str


def _title(track: Mapping[str, Any]) -> str:
    return track.get("metadata", {}).get("tags", {}).get("title") or track.get("filename", "")


def compose(outcome: str, track: Mapping[str, Any], link_base: str) -> Email:
    """The email for ``outcome`` (published, rejected or failed) of ``track``."""
    title = _title(track)
    context: dict[str, Any] = {
        "owner": track["owner"],
        "title": title,
        "track_id": track["track_id"],
        "link": f"{link_base}/tracks/{track['track_id']}",
    }
    error = track.get("error") or {}
    if outcome == "published":
        loudness = track.get("loudness", {}).get("output", {})
        context["renditions"] = ", ".join(
            f"{k} kbps" for k in sorted(track.get("renditions", {}), key=int)
        )
        context["loudness"] = (
            f"{loudness['integrated_lufs']} LUFS, true peak {loudness['true_peak_dbtp']} dBTP"
            if loudness
            else "not measured"
        )
        subject = f'Your track "{title}" is published'
    elif outcome == "rejected":
        context["reason"] = error.get("message", "it matched a protected work")
        subject = f'Your upload "{title}" was not published'
    else:
        context.update(
            reason=error.get("message", "an internal error"),
            code=error.get("code", "internal_error"),
            step=error.get("step"),
            advice=ADVICE.get(error.get("code", ""), DEFAULT_ADVICE),
        )
        subject = f'We could not process "{title}"'
    return Email(
        subject=subject,
        text=_ENV.get_template(f"{outcome}.txt").render(context),
        html=_ENV.get_template(f"{outcome}.html").render(context),
    )


def local_address(user_id: str) -> str:
    """The address a user has until they confirm one of their own."""
    return f"{user_id}@{LOCAL_DOMAIN}"


def deliverable_address(profile: Mapping[str, Any]) -> str | None:
    """Where mail to this user may go, or None: only an address that was confirmed (by its
    link, by an administrator or by the identity provider), or the service's own default. A
    profile whose address was set before addresses were verified has no ``email_verified``
    and gets nothing until the address is confirmed, so that an address typed in to bomb its
    owner stops receiving mail."""
    address = profile.get("email")
    if not isinstance(address, str) or not address:
        return None
    if profile.get("email_verified") is True or address == local_address(profile["user_id"]):
        return address
    return None


def compose_verification(user_id: str, address: str, link: str, valid_hours: int) -> Email:
    """The email that asks the owner of ``address`` to confirm it for ``user_id``."""
    context = {"user": user_id, "address": address, "link": link, "hours": valid_hours}
    return Email(
        subject="Confirm your email address for trackflow",
        text=_ENV.get_template("verify.txt").render(context),
        html=_ENV.get_template("verify.html").render(context),
    )


def compose_endpoint_disabled(endpoint: Mapping[str, Any], reason: str) -> Email:
    """The notice to a webhook endpoint's owner that it was disabled, and why."""
    text = (
        f"Your webhook endpoint {endpoint['url']} ({endpoint['endpoint_id']}) was disabled: "
        f"{reason}. No more events go to it; register it again once it answers."
    )
    return Email(
        subject="A webhook endpoint was disabled",
        text=text,
        html=f"<p>{html.escape(text)}</p>",
    )
