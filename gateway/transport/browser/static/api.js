// The public API over the Connect protocol (JSON), from this page's own origin: a method name alone
// is the KioskService's; a full path ("/hallgate.v1.StaffService/SignIn") names any service (the
// desks). Session tokens never pass through here: the server keeps them in HttpOnly cookies.

import { decodeDetails } from "./proto.js";

const SERVICE = "/hallgate.v1.KioskService/";
const CSRF_COOKIE = "__Host-hallgate-csrf";
const END_STREAM = 0x02;
const COMPRESSED = 0x01;

const HTTP_CODES = {
  400: "invalid_argument", 401: "unauthenticated", 403: "permission_denied", 404: "unimplemented",
  408: "deadline_exceeded", 409: "aborted", 412: "failed_precondition", 413: "resource_exhausted",
  415: "internal", 429: "unavailable", 431: "resource_exhausted", 499: "canceled", 500: "internal",
  501: "unimplemented", 502: "unavailable", 503: "unavailable", 504: "deadline_exceeded",
};

/** An error the API (or the network) gave: `code` is a Connect code name; details decoded. */
export class ApiError extends Error {
  constructor(code, message, details = [], network = false) {
    super(message || code);
    this.name = "ApiError";
    this.code = code;
    this.network = network;
    const d = decodeDetails(details);
    this.reason = d.reason;
    this.violations = d.violations;
    this.retrySeconds = d.retrySeconds;
  }
}

let challengeToken = "";

/** The bot challenge's token for RequestOneTimeCode and Authenticate ("" sends none). */
export function setChallenge(token) {
  challengeToken = token || "";
}

function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === CSRF_COOKIE) return part.slice(i + 1).trim();
  }
  return "";
}

function headers(contentType) {
  const h = { "Content-Type": contentType, "Connect-Protocol-Version": "1", "X-CSRF-Token": csrfToken() };
  if (challengeToken) h["X-Hallgate-Challenge"] = challengeToken;
  return h;
}

function aborted() {
  return new DOMException("aborted", "AbortError");
}

async function post(method, body, contentType, signal, keepalive = false) {
  try {
    return await fetch(method.startsWith("/") ? method : SERVICE + method, {
      method: "POST", headers: headers(contentType), body, credentials: "same-origin", cache: "no-store",
      redirect: "error", signal, keepalive,
    });
  } catch (e) {
    if (signal && signal.aborted) throw aborted();
    throw new ApiError("unavailable", "network: " + e, [], true);
  }
}

function fromJson(err, status) {
  if (err && typeof err === "object" && typeof err.code === "string") {
    return new ApiError(err.code, err.message || "", err.details || []);
  }
  return new ApiError(HTTP_CODES[status] || "unknown", "HTTP " + status);
}

async function errorOf(response) {
  let err = null;
  try {
    err = await response.json();
  } catch {
    // not JSON: the HTTP status decides
  }
  return fromJson(err, response.status);
}

/** A unary call: the response message, or throws ApiError. `keepalive`: the call outlives the page
 * (EndSession as the page goes away). */
export async function unary(method, request = {}, { signal, keepalive = false } = {}) {
  const response = await post(method, JSON.stringify(request), "application/json", signal, keepalive);
  if (!response.ok) throw await errorOf(response);
  try {
    return await response.json();
  } catch {
    if (signal && signal.aborted) throw aborted();
    throw new ApiError("unavailable", "the answer was cut off", [], true);
  }
}

function concat(a, b) {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** A server-streaming call: yields each response message as it arrives; throws ApiError (also
 * after some messages: the stream may end with an error). */
export async function* stream(method, request = {}, { signal } = {}) {
  const json = new TextEncoder().encode(JSON.stringify(request));
  const frame = new Uint8Array(5 + json.length);
  new DataView(frame.buffer).setUint32(1, json.length);
  frame.set(json, 5);
  const response = await post(method, frame, "application/connect+json", signal);
  if (!response.ok) throw await errorOf(response);
  const reader = response.body.getReader();
  const utf8 = new TextDecoder();
  let buf = new Uint8Array(0);
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (signal && signal.aborted) throw aborted();
        throw new ApiError("unavailable", "network: " + e, [], true);
      }
      if (chunk.value) buf = concat(buf, chunk.value);
      while (buf.length >= 5) {
        const flags = buf[0];
        const len = new DataView(buf.buffer, buf.byteOffset, 5).getUint32(1);
        if (buf.length < 5 + len) break;
        const payload = buf.subarray(5, 5 + len);
        buf = buf.slice(5 + len);
        if (flags & COMPRESSED) throw new ApiError("internal", "a compressed message was not asked for");
        const message = len ? JSON.parse(utf8.decode(payload)) : {};
        if (flags & END_STREAM) {
          if (message.error) throw fromJson(message.error, 200);
          return;
        }
        yield message;
      }
      if (chunk.done) break;
    }
  } finally {
    reader.cancel().catch(() => {}); // stops the download if the caller gave up early; a no-op at the end
  }
  throw new ApiError("unavailable", "the stream ended without its end", [], true);
}

/** What the page needs to know: channel, idle timeout, month window, challenge. */
export async function pageConfig() {
  let response;
  try {
    response = await fetch("/page-config.json", { credentials: "same-origin", cache: "no-store" });
  } catch (e) {
    throw new ApiError("unavailable", "network: " + e, [], true);
  }
  if (!response.ok) throw new ApiError(HTTP_CODES[response.status] || "unavailable", "HTTP " + response.status);
  return response.json();
}
