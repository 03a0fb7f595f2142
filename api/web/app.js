// The reference web client: sign in, upload with progress, follow processing, play tracks.
// Plain modules, no build step; every text from the server goes into the page as text.

import { ApiError, follow, postToS3, request, saveSession, session, signOut } from "./api.js";
import { h } from "./dom.js";
import { gone, listParts, sendParts, unfinished } from "./parts.js";
import { player } from "./player.js";
import { clock } from "./waveform.js";

const TERMINAL = new Set(["published", "rejected", "failed"]);
const main = document.getElementById("main");
let workflow = null; // the stages of the workflow, fetched once
let leaving = new AbortController(); // aborted when the view changes: stops its polling

// --- DOM helpers ----------------------------------------------------------------------------
function show(...children) {
  main.replaceChildren(...children);
  main.focus({ preventScroll: true });
}

function alertBox(message) {
  return h("p", { class: "alert", role: "alert", text: message });
}

function bytes(count) {
  const units = ["B", "KB", "MB", "GB"];
  let value = count;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function humanStep(name) {
  return name.replaceAll("_", " ");
}

const STATUS_TEXT = {
  awaiting_upload: "waiting for the upload",
  queued: "queued",
  processing: "processing",
  held_for_review: "held for review",
  published: "published",
  rejected: "rejected",
  failed: "failed",
};

// A match names a reference work by title and rights holder; another user's published track by
// nothing that tells who (the API leaves those fields out).
// ``change`` says how the upload changed the work ("sped up 4 %"), from the factors found.
function describeMatch(match) {
  const changed = match.change ? `, ${match.change}` : "";
  if (match.kind === "published_track") return `a track already published here${changed}`;
  return `“${match.title}” (${match.rights_holder || match.owner})${changed}`;
}

function reason(track) {
  if (track.error) {
    const where = track.error.step ? ` in ${humanStep(track.error.step)}` : "";
    return `${track.error.message} (${track.error.code}${where})`;
  }
  if (track.status === "held_for_review") return "A person will look at a possible copyright match.";
  return "";
}

// --- the workflow, drawn from its stages --------------------------------------------------------
async function stages() {
  workflow ??= (await request("GET", "/v1/workflow")).stages;
  return workflow;
}

function stepGraph(stageList, track) {
  return h(
    "ol",
    { class: "graph", "aria-label": "Processing steps" },
    stageList.map((stage) =>
      h(
        "li",
        { class: "stage" },
        h("span", { class: "stage-name", text: stage.name }),
        h(
          "div",
          { class: "branches" },
          stage.branches.map((branch) =>
            h(
              "ol",
              { class: "branch" },
              branch.map((name) => {
                const step = track.steps?.[name] || { status: "pending" };
                const took = step.duration_s !== undefined ? ` ${Number(step.duration_s).toFixed(1)} s` : "";
                return h(
                  "li",
                  { class: `step ${step.status}`, "data-step": name },
                  h("span", { class: "step-name", text: humanStep(name) }),
                  h("span", { class: "step-state", text: `${step.status}${took}` }),
                );
              }),
            ),
          ),
        ),
      ),
    ),
  );
}

function processingPanel(track, stageList) {
  return h(
    "div",
    { class: "processing" },
    h(
      "p",
      { class: `status ${track.status}`, "data-status": track.status },
      h("strong", { text: STATUS_TEXT[track.status] || track.status }),
      " ",
      h("span", { text: reason(track) }),
    ),
    h("progress", { max: "100", value: String(track.progress ?? 0), "aria-label": "Processing" }),
    stepGraph(stageList, track),
  );
}

// --- sign in ----------------------------------------------------------------------------------
function signInView(next) {
  const error = h("div", { "aria-live": "polite" });
  const name = h("input", {
    id: "user",
    name: "user",
    required: true,
    autocomplete: "username",
    pattern: "[a-z0-9][a-z0-9_.\\-]{0,62}",
    title: "lower-case letters, digits, '.', '_' and '-'",
  });
  const form = h(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const answer = await request("POST", "/v1/session", { user: name.value });
          saveSession(answer.user, answer.token);
          renderAccount();
          if (location.hash === next) route();
          else location.hash = next;
        } catch (failure) {
          error.replaceChildren(
            alertBox(
              failure.status === 404
                ? "This deployment signs you in through its identity provider."
                : failure.message,
            ),
          );
        }
      },
    },
    h("h1", { text: "Sign in" }),
    h("label", { for: "user", text: "Your name" }),
    name,
    h("button", { type: "submit", text: "Sign in" }),
    error,
  );
  show(form);
  name.focus();
}

function renderAccount() {
  const account = document.getElementById("account");
  const current = session();
  account.replaceChildren(
    current
      ? h(
          "span",
          {},
          h("span", { class: "user", text: current.user }),
          " ",
          h("button", {
            class: "link",
            type: "button",
            text: "Sign out",
            onclick: () => {
              signOut();
              renderAccount();
              route();
            },
          }),
        )
      : "",
  );
}

// --- upload -----------------------------------------------------------------------------------
function uploadView() {
  const list = h("ul", { class: "uploads", "aria-label": "Uploads" });
  const input = h("input", {
    id: "files",
    type: "file",
    multiple: true,
    accept: "audio/*,.mp3,.flac,.wav,.aif,.aiff,.ogg,.opus,.m4a",
    class: "visually-hidden",
    onchange: () => {
      for (const file of input.files) list.prepend(uploadCard(file));
      input.value = "";
    },
  });
  const zone = h(
    "label",
    { for: "files", class: "dropzone" },
    h("strong", { text: "Choose audio files" }),
    h("span", { text: " or drop them here" }),
  );
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    for (const file of event.dataTransfer.files) list.prepend(uploadCard(file));
  });
  show(h("h1", { text: "Upload" }), input, zone, interrupted(), list);
}

// Uploads in parts that a reload or a lost connection interrupted: choosing the same file again
// resumes one where it stopped; discarding aborts it.
function interrupted() {
  const section = h("section", { class: "interrupted", "aria-label": "Interrupted uploads" });
  const render = () => {
    const entries = unfinished.of(session()?.user).filter((entry) => !sending.has(entry.track_id));
    section.replaceChildren(
      ...(entries.length
        ? [
            h("h2", { text: "Interrupted uploads" }),
            h("p", { class: "meta", text: "Choose the same file again to go on from where it stopped." }),
            h(
              "ul",
              { class: "list" },
              entries.map((entry) =>
                h(
                  "li",
                  { "data-track-id": entry.track_id },
                  h("span", { text: `${entry.name} (${bytes(entry.size)})` }),
                  h("button", {
                    class: "link",
                    type: "button",
                    text: "Discard",
                    "aria-label": `Discard the upload of ${entry.name}`,
                    onclick: async () => {
                      await abortParts(entry.track_id).catch(() => {});
                      render();
                    },
                  }),
                ),
              ),
            ),
          ]
        : []),
    );
  };
  section.addEventListener("refresh", render);
  render();
  return section;
}

function refreshInterrupted() {
  document.querySelector("section.interrupted")?.dispatchEvent(new Event("refresh"));
}

function uploadCard(file) {
  const bar = h("progress", { max: "100", value: "0", "aria-label": `Upload of ${file.name}` });
  const detail = h("span", { class: "detail", "aria-live": "polite", text: "Preparing…" });
  const cancel = h("button", { type: "button", text: "Cancel" });
  const below = h("div", { class: "below" });
  const card = h(
    "li",
    { class: "card upload", "data-file": file.name },
    h("h2", { text: file.name }),
    bar,
    h("p", {}, detail, " ", cancel),
    below,
  );
  upload(file, { bar, detail, cancel, below, card });
  return card;
}

// Browsers leave the type empty for some audio files; the server identifies the format from the
// content anyway, the type only has to be an audio one.
const TYPE_BY_EXTENSION = {
  mp3: "audio/mpeg",
  flac: "audio/flac",
  wav: "audio/wav",
  aif: "audio/aiff",
  aiff: "audio/aiff",
  ogg: "audio/ogg",
  oga: "audio/ogg",
  opus: "audio/opus",
  m4a: "audio/mp4",
};

// The API's refusals of an upload, in the words of someone choosing files.
const UPLOAD_REFUSALS = {
  unsupported_content_type: "This is not an audio file we accept.",
  too_large: "This file is larger than uploads may be.",
  empty_file: "This file is empty.",
};

function contentType(file) {
  const extension = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
  return file.type || TYPE_BY_EXTENSION[extension] || "application/octet-stream";
}

// The upload's progress on its card: share, speed and time left. Bytes that were there before
// (the parts a resumed upload already has) count toward the share, not toward the speed.
function progressMeter(view, total) {
  let started = performance.now();
  let before = 0;
  const meter = (sent) => {
    const seconds = (performance.now() - started) / 1000;
    const speed = seconds > 0 ? Math.max(0, sent - before) / seconds : 0;
    const left = speed > 0 ? (total - sent) / speed : Infinity;
    view.bar.value = Math.round((100 * sent) / (total || 1));
    view.detail.textContent =
      `${bytes(sent)} of ${bytes(total)} · ${bytes(speed)}/s` +
      (Number.isFinite(left) ? ` · ${clock(left)} left` : "");
  };
  meter.from = (held) => {
    before = held;
    started = performance.now();
    view.bar.value = Math.round((100 * held) / (total || 1));
    if (held) view.detail.textContent = `Resuming: ${bytes(held)} of ${bytes(total)} already uploaded.`;
  };
  return meter;
}

// Multipart uploads this page is sending now (track ids): not offered for resuming.
const sending = new Set();

// Abort an upload in parts: S3 drops its parts, the track ends failed, nothing is left to resume.
async function abortParts(trackId) {
  try {
    await request("DELETE", `/v1/uploads/${trackId}`);
  } catch (error) {
    if (!gone(error)) throw error;
  }
  unfinished.forget(trackId);
}

// The unfinished upload in parts of this very file, if the API still takes its parts: its
// entry and what S3 holds of it. An upload that is over is forgotten: the file starts anew.
async function resumable(file) {
  const saved = unfinished.find(session()?.user, file);
  if (!saved) return null;
  if (sending.has(saved.track_id)) throw new ApiError(409, "sending", "This file is uploading already.");
  try {
    return { saved, listing: await listParts(saved.track_id) };
  } catch (error) {
    if (!gone(error)) throw error;
    unfinished.forget(saved.track_id);
    refreshInterrupted();
    if (error.code !== "upload_finished") return null;
    // completed just before the page went away (then its track goes on), or aborted
    const track = await request("GET", `/v1/tracks/${saved.track_id}`).catch(() => null);
    return track && track.status !== "failed" ? { saved, finished: true } : null;
  }
}

async function upload(file, view) {
  const signal = leaving.signal; // the upload goes on elsewhere; following it stops
  const stop = new AbortController(); // the Cancel button
  view.cancel.addEventListener("click", () => stop.abort());
  let inParts = null; // the track id of an upload in parts
  try {
    const resumed = await resumable(file);
    let trackId;
    let presigned = null;
    if (resumed) {
      trackId = resumed.saved.track_id;
      inParts = trackId;
    } else {
      const created = await request("POST", "/v1/uploads", {
        filename: file.name,
        content_type: contentType(file),
        size: file.size,
      });
      trackId = created.track_id;
      if (created.multipart) {
        inParts = trackId;
        unfinished.save(session()?.user, file, created);
      } else {
        presigned = created.upload;
      }
    }
    if (inParts) {
      sending.add(inParts);
      refreshInterrupted();
    }
    if (stop.signal.aborted) throw new ApiError(0, "cancelled", "Cancelled.");
    view.card.dataset.trackId = trackId;
    const meter = progressMeter(view, file.size);
    if (resumed?.finished) {
      meter.from(file.size);
    } else if (inParts) {
      await sendParts(trackId, file, {
        signal: stop.signal,
        listing: resumed?.listing,
        onStart: meter.from,
        onProgress: meter,
      });
      unfinished.forget(trackId);
    } else {
      const transfer = postToS3(presigned, file, (sent, total) => meter((sent / total) * file.size));
      stop.signal.addEventListener("abort", () => transfer.cancel());
      await transfer.done;
    }
    sending.delete(inParts);
    view.bar.value = 100;
    view.detail.textContent = `Uploaded ${bytes(file.size)}.`;
    view.cancel.remove();
    const stageList = await stages();
    const final = await follow(
      () => request("GET", `/v1/tracks/${trackId}`),
      (track) => TERMINAL.has(track.status),
      (track) => view.below.replaceChildren(processingPanel(track, stageList)),
      signal,
    );
    if (!final) return;
    view.below.append(
      h("a", { href: `#/track/${trackId}`, text: `Open “${final.metadata?.tags?.title || file.name}”` }),
    );
  } catch (error) {
    sending.delete(inParts);
    if (!(error instanceof ApiError)) console.error(error); // a fault of this page, not the file's
    let message =
      error instanceof ApiError
        ? UPLOAD_REFUSALS[error.code] || error.message
        : "This page failed to send the file: reload it and add the file again.";
    if (inParts && error.code === "cancelled") {
      await abortParts(inParts).catch(() => {}); // the sweeper aborts it if this fails
    } else if (inParts && gone(error)) {
      unfinished.forget(inParts);
    } else if (inParts && unfinished.find(session()?.user, file)) {
      message += " Choose the same file again to resume.";
    }
    refreshInterrupted();
    view.cancel.remove();
    view.card.classList.add("failed");
    view.detail.replaceChildren(alertBox(message));
  }
}

// --- one track --------------------------------------------------------------------------------
async function trackView(trackId) {
  const signal = leaving.signal;
  let play;
  try {
    play = await request("GET", `/v1/tracks/${trackId}/playback`);
  } catch (error) {
    show(alertBox(error.status === 404 ? "There is no such track." : error.message));
    return;
  }
  const own = play.owner === session()?.user;
  const drawn = new AbortController(); // this drawing of the page: its player stops with it
  signal.addEventListener("abort", () => drawn.abort(), { once: true });
  const live = h("section", { "aria-label": "Processing" });
  const page = h(
    "article",
    { class: "track" },
    artwork(play),
    h(
      "div",
      { class: "about" },
      h("h1", { text: play.title }),
      h("p", { class: "artist", text: [play.artist, play.album].filter(Boolean).join(" — ") }),
      h("p", { class: "meta", text: `${clock(play.duration_s)} · uploaded by ${play.owner}` }),
    ),
    await player(play, drawn.signal),
    facts(play),
    live,
  );
  if (signal.aborted) return; // another view while this one loaded
  show(page);
  if (own && play.status !== "published") {
    const stageList = await stages();
    follow(
      () => request("GET", `/v1/tracks/${trackId}`),
      (track) => TERMINAL.has(track.status),
      (track) => live.replaceChildren(processingPanel(track, stageList)),
      signal,
    ).then((track) => {
      if (track?.status === "published" && !signal.aborted) {
        drawn.abort();
        trackView(trackId);
      }
    });
  }
}

function artwork(play) {
  const art = play.artwork;
  if (!art["300.jpg"]) return h("div", { class: "artwork none", role: "img", "aria-label": "No artwork" });
  // the @2x files serve high-density screens: the browser picks by the pixels it needs
  const widths = { 300: 300, "300@2x": 600, 500: 500, "500@2x": 1000 };
  const set = (extension) =>
    Object.entries(widths)
      .filter(([name]) => art[`${name}.${extension}`])
      .map(([name, width]) => `${art[`${name}.${extension}`]} ${width}w`)
      .join(", ");
  const sizes = "(max-width: 40rem) 90vw, 300px";
  return h(
    "picture",
    { class: "artwork" },
    art["300.webp"] ? h("source", { type: "image/webp", srcset: set("webp"), sizes }) : null,
    h("img", {
      src: art["300.jpg"],
      srcset: set("jpg"),
      sizes,
      width: "300",
      height: "300",
      alt: `Artwork of ${play.title}`,
    }),
  );
}

function facts(play) {
  const rows = [];
  const loudness = play.loudness;
  if (loudness?.input) {
    const lufs = (value) => (value === null || value === undefined ? "silent" : `${Number(value).toFixed(1)} LUFS`);
    rows.push(["Loudness uploaded", lufs(loudness.input.integrated_lufs)]);
    if (loudness.output) rows.push(["Loudness now", lufs(loudness.output.integrated_lufs)]);
  }
  // what the renditions measure, and the gain a player applies to reach each target loudness
  // (this page plays them as they are: the masters are at -14 LUFS already)
  const measured = loudness?.playback;
  if (measured) {
    const number = (value, unit) =>
      value === null || value === undefined ? "—" : `${Number(value).toFixed(1)} ${unit}`;
    const signed = (value) => {
      const tenths = Math.round(Number(value) * 10) / 10 || 0; // no "-0.0"
      return `${tenths > 0 ? "+" : ""}${tenths.toFixed(1)} dB`;
    };
    rows.push([
      "Stream loudness",
      measured.integrated_lufs === null || measured.integrated_lufs === undefined
        ? "silent"
        : `${number(measured.integrated_lufs, "LUFS")} integrated · range ${number(measured.range_lu, "LU")}` +
          ` · true peak ${number(measured.true_peak_dbtp, "dBTP")}`,
    ]);
    if (measured.gains?.length) {
      rows.push([
        "Player gain",
        measured.gains
          .map(
            (gain) =>
              `${signed(gain.gain_db)} to reach ${gain.target_lufs} LUFS` +
              (gain.peak_limited ? " (held down by the true peak)" : ""),
          )
          .join(" · "),
      ]);
    }
  }
  if (play.copyright) {
    const matches = play.copyright.matches || [];
    rows.push([
      "Copyright",
      matches.length
        ? matches.map((m) => `${describeMatch(m)}, ${Math.round(m.matched_s)} s matched`).join("; ")
        : "no protected work found",
    ]);
  }
  rows.push(["Status", STATUS_TEXT[play.status] || play.status]);
  return h(
    "dl",
    { class: "facts" },
    rows.map(([term, value]) => [h("dt", { text: term }), h("dd", { text: value })]),
  );
}

// --- lists: my tracks, feed, search -------------------------------------------------------------
function trackLink(item) {
  return h(
    "li",
    {},
    h("a", { href: `#/track/${item.track_id}`, text: item.title || item.filename || item.track_id }),
    h("span", {
      class: "meta",
      text: [item.artist, item.uploader || item.owner, item.status && STATUS_TEXT[item.status]]
        .filter(Boolean)
        .join(" · "),
    }),
  );
}

async function pagedList(title, load, toItem, empty) {
  const list = h("ul", { class: "list" });
  const more = h("button", { type: "button", text: "More" });
  let cursor = null;
  const next = async () => {
    more.disabled = true;
    try {
      const page = await load(cursor);
      list.append(...page.items.map(toItem));
      cursor = page.next_cursor;
      if (!list.children.length) list.append(h("li", { text: empty }));
    } catch (error) {
      list.after(alertBox(error.message));
    }
    more.disabled = false;
    more.hidden = !cursor;
  };
  show(h("h1", { text: title }), list, more);
  await next();
  more.addEventListener("click", next);
}

function withCursor(path, cursor) {
  return cursor ? `${path}${path.includes("?") ? "&" : "?"}cursor=${encodeURIComponent(cursor)}` : path;
}

function tracksView() {
  return pagedList(
    "My tracks",
    async (cursor) => {
      const page = await request("GET", withCursor("/v1/tracks", cursor));
      return {
        items: page.tracks.map((t) => ({ ...t, title: t.metadata?.tags?.title || t.filename })),
        next_cursor: page.next_cursor,
      };
    },
    trackLink,
    "No uploads yet.",
  );
}

function feedView() {
  return pagedList(
    "Feed",
    async (cursor) => {
      const page = await request("GET", withCursor("/v1/feed", cursor));
      return { items: page.entries, next_cursor: page.next_cursor };
    },
    trackLink,
    "Nothing yet: tracks of the people you follow appear here.",
  );
}

function searchView() {
  const results = h("ul", { class: "list" });
  const count = h("p", { class: "meta", "aria-live": "polite" });
  const box = h("input", { id: "q", type: "search", autocomplete: "off", spellcheck: "false" });
  let timer = null;
  let latest = 0;
  box.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const query = box.value.trim();
      const asked = ++latest;
      if (!query) {
        results.replaceChildren();
        count.textContent = "";
        return;
      }
      try {
        const page = await request("GET", `/v1/search?q=${encodeURIComponent(query)}&limit=20`);
        if (asked !== latest) return; // a later keystroke's answer wins
        results.replaceChildren(...page.hits.map(trackLink));
        count.textContent = `${page.total} ${page.total === 1 ? "track" : "tracks"}`;
      } catch (error) {
        count.textContent = error.message;
      }
    }, 200);
  });
  show(
    h("h1", { text: "Search" }),
    h("label", { for: "q", text: "Title, artist, album or genre" }),
    box,
    count,
    results,
  );
  box.focus();
}

// --- routing ------------------------------------------------------------------------------------
function route() {
  leaving.abort();
  leaving = new AbortController();
  const path = location.hash.slice(1) || "/upload";
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === `#${path}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!session()) return signInView(`#${path}`);
  const [, view, id] = path.split("/");
  if (view === "track" && id) return trackView(id);
  if (view === "tracks") return tracksView();
  if (view === "feed") return feedView();
  if (view === "search") return searchView();
  return uploadView();
}

window.addEventListener("hashchange", route);
renderAccount();
route();
