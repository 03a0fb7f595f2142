// The trackflow API and S3, as the browser talks to them. A client app would copy this file.

const SESSION_KEY = "trackflow.session";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function session() {
  const saved = sessionStorage.getItem(SESSION_KEY);
  return saved ? JSON.parse(saved) : null;
}

export function saveSession(user, token) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify({ user, token }));
}

export function signOut() {
  sessionStorage.removeItem(SESSION_KEY);
}

export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  const current = session();
  if (current) headers.Authorization = `Bearer ${current.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, "network", "The server cannot be reached: check your connection.");
  }
  if (response.status === 204) return null;
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = payload.error || {};
    if (response.status === 401) signOut();
    throw new ApiError(response.status, error.code || "http_error", error.message || response.statusText);
  }
  return payload;
}

// Why S3 refused an upload (a presigned POST, or a part's PUT), in words a person understands.
function s3Refusal(status, xml) {
  const code = /<Code>([^<]*)<\/Code>/.exec(xml || "")?.[1] || "";
  const message = /<Message>([^<]*)<\/Message>/.exec(xml || "")?.[1] || "";
  if (code === "EntityTooLarge" || /content-length-range/i.test(message)) {
    return new ApiError(status, "too_large", "The file is larger than uploads may be.");
  }
  if (/expired/i.test(message) || code === "ExpiredToken") {
    return new ApiError(status, "expired", "The upload link expired: add the file again.");
  }
  if (/content-type/i.test(message)) {
    return new ApiError(status, "not_audio", "The file's type is not an audio type we accept.");
  }
  if (code === "BadDigest") {
    return new ApiError(status, "changed", "The file changed while it was uploading: add it again.");
  }
  if (code === "SlowDown" || code === "RequestTimeout") {
    return new ApiError(status, code, "Storage is busy: the upload will try again.");
  }
  return new ApiError(status, code || "upload_failed", message || `Storage answered ${status}.`);
}

// Send a body straight to S3 through a presigned URL; onProgress(sentBytes, totalBytes);
// answer(xhr) reads what S3 answered. Returns { done: Promise, cancel() }.
function sendToS3(method, url, body, headers, onProgress, answer = () => undefined) {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(answer(xhr));
      else reject(s3Refusal(xhr.status, xhr.responseText));
    });
    xhr.addEventListener("error", () =>
      reject(new ApiError(0, "network", "The connection to storage failed.")),
    );
    xhr.addEventListener("abort", () => reject(new ApiError(0, "cancelled", "Cancelled.")));
    xhr.open(method, url);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.send(body);
  });
  return { done, cancel: () => xhr.abort() };
}

// POST the file straight to S3 with its presigned form; onProgress(sentBytes, totalBytes).
// Returns { done: Promise, cancel() }.
export function postToS3(presigned, file, onProgress) {
  const form = new FormData();
  for (const [name, value] of Object.entries(presigned.fields)) form.append(name, value);
  form.append("file", file); // S3 ignores every field after the file
  return sendToS3("POST", presigned.url, form, {}, onProgress);
}

// PUT one part (a slice of the file: the browser reads it from disk as it sends) to its
// presigned UploadPart URL, with the CRC32 that the URL signs; done resolves to the part's ETag,
// which the page can read only if the bucket's CORS rule exposes it.
export function putPart(url, blob, checksum, onProgress) {
  const transfer = sendToS3("PUT", url, blob, { "x-amz-checksum-crc32": checksum }, onProgress, (xhr) =>
    xhr.getResponseHeader("ETag"),
  );
  const done = transfer.done.then((etag) => {
    if (!etag) {
      const why = "Storage kept the part's receipt (ETag) from this page: its CORS rule must expose ETag.";
      throw new ApiError(0, "etag_hidden", why);
    }
    return etag.replaceAll('"', "");
  });
  return { done, cancel: transfer.cancel };
}

// Calls fetchOnce until isDone(result); waits longer between calls while nothing changes
// (1 s, growing to 8 s), and at once again after a change. onUpdate sees every result.
export async function follow(fetchOnce, isDone, onUpdate, signal) {
  let delay = 1000;
  let previous = "";
  for (;;) {
    if (signal?.aborted) return;
    let result;
    try {
      result = await fetchOnce();
    } catch (error) {
      if (error.status && error.status < 500 && error.status !== 429) throw error;
      result = null; // the network or the server hiccuped: try again later
    }
    if (result) {
      onUpdate(result);
      if (isDone(result)) return result;
      const fingerprint = JSON.stringify(result);
      delay = fingerprint === previous ? Math.min(delay * 1.5, 8000) : 1000;
      previous = fingerprint;
    } else {
      delay = Math.min(delay * 2, 8000);
    }
    await new Promise((resolve) => setTimeout(resolve, delay * (0.8 + Math.random() * 0.4)));
  }
}
