// The track page's player. The HLS ladder (AAC-LC 160/96 and Opus 96 kbps in fMP4 segments)
// plays through hls.js on Media Source Extensions wherever they exist (iOS 17.1 and later
// included, through ManagedMediaSource); the browser's own HLS only where hls.js cannot run,
// since Chromium's built-in HLS has had regressions; the MP3 renditions when neither can play,
// or when the stream fails (the page says so).
//
// The browser's own HLS gets one variant playlist, not the master: the master mixes AAC and
// Opus, and Chromium 156's built-in player, left to choose, started on Opus, moved to AAC at
// the second segment and stalled there (paused false, readyState 4, currentTime 0), while each
// variant alone played. Apple's authoring spec does not list Opus either. So there it plays the
// best AAC rung by default, the others by choice, and offers no Auto.
// The audio element tells which plays: data-engine (hls.js, native, mp3), data-variant (the
// ladder's rung, e.g. aac160) or data-bitrate (the MP3's kbps).

import { h } from "./dom.js";
import { Waveform } from "./waveform.js";

// hls.js's light ES-module build, pinned and kept in the repository (vendor/hls.js/README.md);
// loaded only here, on a track page.
const HLS_MODULE = "./vendor/hls.js/hls.light.min.mjs";
const HLS_TYPE = "application/vnd.apple.mpegurl";

export function variantLabel(variant) {
  return `${variant.codec === "opus" ? "Opus" : "AAC"} ${variant.bitrate_kbps} kbps`;
}

// hls.js, if it loads and this browser has Media Source Extensions; else null.
async function loadHls() {
  try {
    const Hls = (await import(HLS_MODULE)).default;
    return Hls.isSupported() ? Hls : null;
  } catch (error) {
    console.warn("hls.js did not load", error);
    return null;
  }
}

// The variant playlists a master playlist names, by rung (the folder of each: aac160/...).
async function variantUrls(master) {
  const response = await fetch(master);
  if (!response.ok) throw new Error(`the playlist answered ${response.status}`);
  const lines = (await response.text()).split(/\r?\n/).map((line) => line.trim());
  const urls = {};
  lines.forEach((line, index) => {
    if (!line.startsWith("#EXT-X-STREAM-INF")) return;
    const uri = lines.slice(index + 1).find((next) => next && !next.startsWith("#"));
    if (!uri) return;
    const url = new URL(uri, master);
    urls[url.pathname.split("/").at(-2)] = url.href;
  });
  return urls;
}

function rungOf(playlistUrl) {
  try {
    return new URL(playlistUrl).pathname.split("/").at(-2);
  } catch {
    return undefined;
  }
}

// The player of a track's playback answer; it stops when `signal` is aborted.
export async function player(play, signal) {
  const bitrates = Object.keys(play.renditions).sort((a, b) => a - b);
  const variants = play.hls ? play.stream : [];
  if (!bitrates.length && !play.hls) return h("p", { class: "meta", text: "Not playable yet." });
  const byName = Object.fromEntries(variants.map((variant) => [variant.name, variant]));

  const audio = h("audio", { controls: true, preload: "metadata" });
  const nowPlaying = h("p", { class: "now-playing", "aria-live": "polite" });
  const notice = h("p", { class: "notice", role: "status" });
  const Hls = play.hls ? await loadHls() : null;
  const native = Boolean(play.hls && !Hls && audio.canPlayType(HLS_TYPE));
  let hls = null; // the hls.js instance while it plays
  let nativeUrls = null; // native HLS: the variant playlists, by rung
  let streamBroken = !Hls && !native;

  // --- the quality choice: Auto and each rung of the ladder, then each MP3 -----------------------
  const choices = [];
  const choice = (value, label, checked) => {
    const input = h("input", {
      type: "radio",
      name: "quality",
      value,
      checked,
      onchange: () => choose(value),
    });
    choices.push(input);
    return h("label", {}, input, ` ${label}`);
  };
  const streamChoices = play.hls
    ? [
        native ? null : choice("hls:", "Auto", !streamBroken),
        variants.map((variant) => choice(`hls:${variant.name}`, variantLabel(variant), false)),
      ]
    : [];
  const mp3Choices = bitrates.map((bitrate, index) =>
    choice(`mp3:${bitrate}`, `MP3 ${bitrate} kbps`, (!play.hls || streamBroken) && index === 0),
  );
  const quality = h("fieldset", { class: "quality" }, h("legend", { text: "Quality" }), streamChoices, mp3Choices);
  const check = (value) => {
    for (const input of choices) input.checked = input.value === value;
  };
  const disableStream = () => {
    for (const input of choices) if (input.value.startsWith("hls:")) input.disabled = true;
  };

  // --- engines ---------------------------------------------------------------------------------
  const position = () => ({ at: audio.currentTime || 0, playing: !audio.paused });
  const resume = ({ at, playing }) => {
    if (at) audio.currentTime = at;
    if (playing) audio.play().catch(() => {});
  };
  const stopHls = () => {
    hls?.destroy(); // detaches the audio element, emptied
    hls = null;
  };
  const engine = (name) => {
    audio.dataset.engine = name;
    delete audio.dataset.variant;
    delete audio.dataset.bitrate;
  };

  function playMp3(bitrate, keep) {
    stopHls();
    engine("mp3");
    audio.dataset.bitrate = bitrate;
    audio.src = play.renditions[bitrate];
    nowPlaying.textContent = `Playing MP3 ${bitrate} kbps`;
    resume(keep);
  }

  function fallBack(why) {
    const keep = position();
    streamBroken = true;
    disableStream();
    if (!bitrates.length) {
      stopHls();
      nowPlaying.textContent = "";
      notice.textContent = `The stream cannot play here (${why}), and there is no MP3 yet.`;
      return;
    }
    notice.textContent = `The stream cannot play here (${why}): playing the MP3 instead.`;
    check(`mp3:${bitrates[0]}`);
    playMp3(bitrates[0], keep);
  }

  function showRung(name, auto) {
    audio.dataset.variant = name;
    const variant = byName[name];
    const label = variant ? variantLabel(variant) : name;
    nowPlaying.textContent = `Streaming ${label}${auto ? " (Auto)" : ""} · HLS through hls.js`;
  }

  // hls.js on Media Source Extensions; `rung` "" for Auto
  function startHls(rung, keep) {
    stopHls();
    audio.removeAttribute("src");
    engine("hls.js");
    nowPlaying.textContent = "Loading the stream…";
    // no worker: the policy then needs no worker-src blob:
    const instance = new Hls({ enableWorker: false, autoStartLoad: false });
    hls = instance;
    let recovered = false;
    instance.on(Hls.Events.MANIFEST_PARSED, () => {
      const index = levelOf(rung);
      if (index >= 0) instance.loadLevel = index; // manual; -1 (Auto) lets hls.js choose
      instance.startLoad(keep.at > 0 ? keep.at : -1);
      if (keep.playing) audio.play().catch(() => {});
    });
    instance.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => {
      showRung(rungOf(instance.levels[data.level]?.uri), instance.autoLevelEnabled);
    });
    instance.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal || hls !== instance) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && !recovered) {
        recovered = true; // once: a decode error may pass on a fresh buffer
        instance.recoverMediaError();
        return;
      }
      fallBack(data.response?.code ? `${data.details}, ${data.response.code}` : data.details);
    });
    instance.attachMedia(audio);
    instance.loadSource(play.hls);
  }

  function levelOf(rung) {
    if (!hls || !rung) return -1;
    return hls.levels.findIndex((level) => rungOf(level.uri) === rung);
  }

  // the browser's own HLS: one variant's playlist (see above)
  async function startNative(rung, keep) {
    engine("native");
    try {
      nativeUrls ??= await variantUrls(play.hls);
    } catch (error) {
      fallBack(error.message);
      return;
    }
    if (!nativeUrls[rung]) {
      fallBack(`the playlist names no ${rung}`);
      return;
    }
    audio.src = nativeUrls[rung];
    audio.dataset.variant = rung;
    nowPlaying.textContent = `Streaming ${variantLabel(byName[rung])} · the browser's own HLS`;
    resume(keep);
  }

  function choose(value) {
    const keep = position();
    const [kind, name] = value.split(":");
    notice.textContent = "";
    if (kind === "mp3") playMp3(name, keep);
    else if (hls) {
      const index = levelOf(name);
      if (index >= 0) hls.currentLevel = index; // now: the buffer is dropped, the position kept
      else hls.nextLevel = -1; // Auto, from the next segment
      // (what plays is shown when the switch lands; the rung chosen may be the one playing)
      if (audio.dataset.variant) showRung(audio.dataset.variant, hls.autoLevelEnabled);
    } else if (Hls) startHls(name, keep);
    else if (native) startNative(name, keep);
  }

  audio.addEventListener("error", () => {
    if (audio.dataset.engine === "native") fallBack("the browser refused the playlist");
    else if (audio.dataset.engine === "mp3" && audio.error) {
      notice.textContent = "This track cannot play in this browser.";
    }
  });

  // variants this browser cannot decode are not offered
  // (browsers have disagreed on Opus's case: hls.js tries both, and so does this)
  const source = Hls?.getMediaSource();
  const supports = (type) => (source ? source.isTypeSupported(type) : Boolean(audio.canPlayType(type)));
  for (const variant of variants) {
    const spellings = variant.codecs === "opus" ? ["opus", "Opus"] : [variant.codecs];
    const playable = spellings.some((codecs) => supports(`audio/mp4; codecs="${codecs}"`));
    const input = choices.find((each) => each.value === `hls:${variant.name}`);
    if (!playable) input.disabled = true;
  }

  const playable = (variant) => !choices.find((each) => each.value === `hls:${variant.name}`).disabled;
  const nativeRung = variants.find((v) => v.codec === "aac" && playable(v)) || variants.find(playable);
  if (Hls) startHls("", { at: 0, playing: false });
  else if (native && nativeRung) {
    check(`hls:${nativeRung.name}`);
    startNative(nativeRung.name, { at: 0, playing: false });
  } else if (native) fallBack("no variant this browser decodes");
  else if (bitrates.length) {
    if (play.hls) {
      disableStream();
      notice.textContent = "This browser cannot play the stream (HLS): playing the MP3 instead.";
    }
    playMp3(bitrates[0], { at: 0, playing: false });
  }

  // the page goes (another view, or this one drawn again): stop loading and playing
  const stop = () => {
    stopHls();
    audio.pause();
  };
  if (signal?.aborted) stop();
  else signal?.addEventListener("abort", stop, { once: true });

  // --- the waveform: click or arrow keys seek, whichever engine plays --------------------------
  const canvas = h("canvas", { class: "waveform", "aria-label": "Waveform: click or use the arrow keys to seek" });
  const parts = [canvas, audio, nowPlaying, notice, quality];
  if (play.peaks) {
    const peaks = await fetch(play.peaks).then((response) => response.json());
    const waveform = new Waveform(canvas, peaks, {
      duration: play.duration_s,
      onSeek: (seconds) => {
        audio.currentTime = seconds;
        waveform.setPosition(seconds);
      },
    });
    audio.addEventListener("timeupdate", () => waveform.setPosition(audio.currentTime));
    waveform.draw();
  } else {
    canvas.remove();
  }
  return h("div", { class: "player" }, parts);
}
