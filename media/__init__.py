"""The media core: pure functions over files and arrays, testable without AWS.

probe (the input gate), tags, artwork, waveform, loudness, transcode and fingerprint each take
local files or PCM and return plain results; the Celery tasks fetch inputs and store outputs.
"""
