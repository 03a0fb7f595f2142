// A large file in parts: the API's resumable multipart upload, as the browser sends it.
// Each part's CRC32 is computed here (the part URL signs it), several parts go at once, a part
// that fails is tried again after a pause, and an interrupted upload resumes from what S3 holds.

import { ApiError, putPart, request } from "./api.js";

const WORKERS = 4; // parts in flight at once
const ATTEMPTS = 5; // tries of one part before the upload stops (what S3 holds stays)
const CHUNK = 1 << 20; // the CRC32 reads a part this much at a time: never a whole file in memory

// --- CRC32 (IEEE, as zlib and S3's x-amz-checksum-crc32) ---------------------------------------
const TABLE = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

export function crc32Update(crc, bytes) {
  let c = ~crc;
  for (let i = 0; i < bytes.length; i += 1) c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

// The CRC32 of a Blob, as S3 spells it: four big-endian bytes, base64.
export async function crc32(blob, signal) {
  let crc = 0;
  for (let at = 0; at < blob.size; at += CHUNK) {
    if (signal?.aborted) throw cancelled();
    crc = crc32Update(crc, new Uint8Array(await blob.slice(at, at + CHUNK).arrayBuffer()));
  }
  return btoa(String.fromCharCode(crc >>> 24, (crc >>> 16) & 0xff, (crc >>> 8) & 0xff, crc & 0xff));
}

// --- what this browser remembers of unfinished uploads, to resume them after a reload ----------
const RESUME_KEY = "trackflow.multipart";

function remembered() {
  try {
    const saved = JSON.parse(localStorage.getItem(RESUME_KEY) || "[]");
    // past its expiry, S3 has dropped the upload: nothing left to resume
    const now = Date.now();
    return Array.isArray(saved) ? saved.filter((entry) => !(Date.parse(entry.expires_at) < now)) : [];
  } catch {
    return []; // unreadable or storage refused: nothing to resume
  }
}

function keep(entries) {
  try {
    localStorage.setItem(RESUME_KEY, JSON.stringify(entries));
  } catch {
    // storage full or refused: this upload just cannot resume after a reload
  }
}

function sameFile(entry, file) {
  return entry.name === file.name && entry.size === file.size && entry.last_modified === file.lastModified;
}

export const unfinished = {
  // the user's unfinished uploads, oldest first
  of: (user) => remembered().filter((entry) => entry.user === user),
  // the unfinished upload of this very file (same name, size and modification time), if any
  find: (user, file) => remembered().find((entry) => entry.user === user && sameFile(entry, file)),
  save(user, file, created) {
    const entry = {
      user,
      track_id: created.track_id,
      upload_id: created.multipart.upload_id,
      name: file.name,
      size: file.size,
      last_modified: file.lastModified,
      part_size: created.multipart.part_size,
      expires_at: created.multipart.expires_at,
      started_at: new Date().toISOString(),
    };
    keep([...remembered().filter((e) => !(e.user === user && sameFile(e, file))), entry]);
    return entry;
  },
  forget: (trackId) => keep(remembered().filter((entry) => entry.track_id !== trackId)),
};

// --- sending ----------------------------------------------------------------------------------
function cancelled() {
  return new ApiError(0, "cancelled", "Cancelled.");
}

function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(cancelled());
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", stop);
      resolve();
    }, ms);
    const stop = () => {
      clearTimeout(timer);
      reject(cancelled());
    };
    signal?.addEventListener("abort", stop, { once: true });
  });
}

// Worth another try: the network, a server's hiccup, S3 busy, or an expired URL (a fresh one is
// asked for); a refusal (a changed file, a finished upload) is final.
function transient(error) {
  if (error.code === "cancelled") return false;
  if (error.status === 0 || error.status >= 500 || error.status === 429) return true;
  return ["expired", "RequestTimeout"].includes(error.code);
}

// What S3 holds of the upload, and what is missing (GET /v1/uploads/{id}/parts): where to resume.
export function listParts(trackId) {
  return request("GET", `/v1/uploads/${trackId}/parts`);
}

// Answers of the API that say the upload can no longer take parts: start a new one.
export function gone(error) {
  return error.status === 404 || ["upload_finished", "upload_gone", "not_multipart"].includes(error.code);
}

async function sendPart(trackId, file, number, partSize, signal, onSent) {
  const start = (number - 1) * partSize;
  const blob = file.slice(start, Math.min(start + partSize, file.size));
  const checksum = await crc32(blob, signal);
  for (let attempt = 1; ; attempt += 1) {
    try {
      // a URL is asked for just before its part goes: URLs live minutes, uploads hours
      const answer = await request("POST", `/v1/uploads/${trackId}/parts`, {
        parts: [{ number, checksum_crc32: checksum }],
      });
      if (signal.aborted) throw cancelled();
      const transfer = putPart(answer.parts[0].url, blob, checksum, (sent) => onSent(sent));
      const stop = () => transfer.cancel();
      signal.addEventListener("abort", stop, { once: true });
      try {
        return { number, etag: await transfer.done, checksum_crc32: checksum };
      } finally {
        signal.removeEventListener("abort", stop);
      }
    } catch (error) {
      onSent(0);
      if (signal.aborted) throw cancelled();
      if (!transient(error) || attempt === ATTEMPTS) throw error;
      // exponential backoff with full jitter: 0.5, 1, 2, 4 s at most
      await pause(Math.random() * Math.min(8000, 250 * 2 ** attempt), signal);
    }
  }
}

async function complete(trackId, parts, signal) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await request("POST", `/v1/uploads/${trackId}/complete`, { parts });
    } catch (error) {
      // the answer to an earlier try was lost, but S3 assembled the object
      if (attempt > 1 && error.code === "upload_finished") return null;
      if (!transient(error) || attempt === 3) throw error;
      await pause(1000 * attempt, signal);
    }
  }
}

// Send the parts S3 does not hold yet, `workers` at once, then complete the upload.
// onStart(heldBytes) tells how much was there already (a resumed upload); onProgress(bytes)
// how much S3 has or is receiving now. A part that keeps failing stops the upload once the
// parts in flight are done: what S3 holds stays for the next try. `listing` saves asking again.
export async function sendParts(trackId, file, { signal, onStart, onProgress, listing, workers = WORKERS }) {
  for (let round = 1; ; round += 1) {
    const held = listing ?? (await listParts(trackId));
    listing = null;
    if (Math.ceil(file.size / held.part_size) !== held.part_count) {
      throw new ApiError(409, "not_this_file", "This file is not the one this upload began with.");
    }
    const done = new Map(held.uploaded.map((part) => [part.number, part]));
    let heldBytes = held.uploaded_bytes;
    if (round === 1) onStart(heldBytes);
    const sending = new Map(); // part number → bytes sent of it so far
    const report = () => onProgress(heldBytes + [...sending.values()].reduce((a, b) => a + b, 0));
    const queue = [...held.missing];
    let failure = null;
    const worker = async () => {
      while (queue.length && !failure && !signal.aborted) {
        const number = queue.shift();
        try {
          const part = await sendPart(trackId, file, number, held.part_size, signal, (sent) => {
            sending.set(number, sent);
            report();
          });
          done.set(number, part);
          sending.delete(number);
          heldBytes += Math.min(held.part_size, file.size - (number - 1) * held.part_size);
          report();
        } catch (error) {
          sending.delete(number);
          failure ??= error;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(workers, queue.length) }, worker));
    if (signal.aborted) throw cancelled();
    if (failure) throw failure;
    const parts = [...done.values()]
      .sort((a, b) => a.number - b.number)
      .map(({ number, etag, checksum_crc32: crc }) => (crc ? { number, etag, checksum_crc32: crc } : { number, etag }));
    try {
      return await complete(trackId, parts, signal);
    } catch (error) {
      // a part went missing or changed since it was listed: list again and send it, once
      if (round === 1 && ["parts_missing", "part_changed", "parts_invalid"].includes(error.code)) continue;
      throw error;
    }
  }
}
