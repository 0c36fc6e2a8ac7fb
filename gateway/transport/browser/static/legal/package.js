// The delivery package in the browser: the chunks FulfilRequest streams, checked against the signed
// manifest exactly as gateway/domain/delivery.py verify_delivery does (content digest over the
// length-framed chunks, chunk count and size, records per number, subscriber records, the Ed25519
// signature with the gateway's public key), and written as a tar of the directory `hallgate legal
// verify` reads (records.bin, manifest.json, manifest.sig).

import { fields } from "/proto.js";

const FRAME = 8;
const utf8 = new TextDecoder();

export function frame(chunk) {
  const out = new Uint8Array(FRAME + chunk.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(chunk.length));
  out.set(chunk, FRAME);
  return out;
}

export function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A DeliveryRecords chunk: {target, subscriber: null|"found"|"not_found", calls}. */
export function readChunk(chunk) {
  const out = { target: "", subscriber: null, calls: 0 };
  for (const f of fields(chunk)) {
    if (f.no === 1 && f.wire === 2) out.target = utf8.decode(f.value);
    else if (f.no === 2 && f.wire === 2) {
      const exists = fields(f.value).some((g) => g.no === 1 && g.wire === 0 && g.value !== 0);
      out.subscriber = exists ? "found" : "not_found";
    } else if (f.no === 3 && f.wire === 2) out.calls += 1;
  }
  return out;
}

// --- the public key -----------------------------------------------------------------------------

const SPKI_ED25519 = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/** A PEM "PUBLIC KEY" (Ed25519 SubjectPublicKeyInfo) → {key: CryptoKey, keyId}; throws if it is not one. */
export async function loadPublicKey(pemText) {
  const m = /-----BEGIN PUBLIC KEY-----([\s\S]+?)-----END PUBLIC KEY-----/.exec(pemText);
  if (!m) throw new Error("not a PEM public key");
  const der = Uint8Array.from(atob(m[1].replace(/\s+/g, "")), (c) => c.charCodeAt(0));
  if (der.length !== 44 || SPKI_ED25519.some((b, i) => der[i] !== b)) throw new Error("not an Ed25519 key");
  const key = await crypto.subtle.importKey("spki", der, { name: "Ed25519" }, false, ["verify"]);
  const keyId = (await sha256Hex(der.subarray(12))).slice(0, 32);
  return { key, keyId };
}

// --- verification -------------------------------------------------------------------------------

/** What the manifest says, and each check as {id, ok: true|false|null (not checked), params}. */
export async function verify({ manifestBytes, signature, chunks, publicKey, request }) {
  const checks = [];
  let doc;
  try {
    doc = JSON.parse(utf8.decode(manifestBytes));
  } catch {
    return { doc: null, checks: [{ id: "content", ok: false }] };
  }
  if (publicKey) {
    let good = false;
    try {
      good = await crypto.subtle.verify({ name: "Ed25519" }, publicKey.key, signature, manifestBytes);
    } catch {
      good = false;
    }
    checks.push({ id: "signature", ok: good, params: { id: doc.key_id } });
    checks.push({ id: "key", ok: publicKey.keyId === doc.key_id });
  } else {
    checks.push({ id: "signature", ok: null, params: { id: doc.key_id } });
  }
  if (chunks) {
    const framed = concat(chunks.map(frame));
    checks.push({ id: "content", ok: (await sha256Hex(framed)) === doc.content_sha256 });
    const per = {};
    const subs = {};
    for (const c of chunks) {
      const r = readChunk(c);
      per[r.target] = (per[r.target] || 0) + r.calls;
      if (r.subscriber) subs[r.target] = r.subscriber;
    }
    const totals = doc.totals || {};
    const stated = doc.per_target || [];
    const countsOk = totals.chunks === chunks.length && totals.content_bytes === framed.length
      && stated.every((p) => (per[p.target] || 0) === p.call_details && (subs[p.target] || "not_requested") === p.subscriber)
      && Object.keys(per).every((tgt) => stated.some((p) => p.target === tgt))
      && Object.values(subs).filter((s) => s === "found").length === totals.subscribers_found;
    checks.push({ id: "counts", ok: countsOk });
  } else {
    checks.push({ id: "manifestOnly", ok: null });
  }
  if (request) {
    checks.push({
      id: "request",
      ok: doc.request_id === request.requestId && doc.case_number === request.caseNumber
        && doc.letter_sha256 === (request.letter || {}).sha256,
    });
    const approvedTargets = new Set(request.targets || []);
    const approvedCats = new Set((request.categories || []).map((c) => c.replace(/^DATA_CATEGORY_/, "").toLowerCase()));
    const w = request.window || {};
    const within = (doc.targets || []).every((x) => approvedTargets.has(x))
      && (doc.categories || []).every((c) => approvedCats.has(c))
      && doc.window && Date.parse(doc.window.start) >= Date.parse(w.start) && Date.parse(doc.window.end) <= Date.parse(w.end);
    checks.push({ id: "scope", ok: Boolean(within) });
  }
  return { doc, checks };
}

// --- the package as a tar -----------------------------------------------------------------------

function octal(n, width) {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

function tarHeader(name, size, type, mode, mtime) {
  const h = new Uint8Array(512);
  const put = (text, at) => h.set(new TextEncoder().encode(text), at);
  put(name, 0);
  put(octal(mode, 8), 100);
  put(octal(0, 8), 108);
  put(octal(0, 8), 116);
  put(octal(size, 12), 124);
  put(octal(mtime, 12), 136);
  put("        ", 148);
  put(type, 156);
  put("ustar\0", 257);
  put("00", 263);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148);
  return h;
}

/** A tar holding DIR/ with records.bin (the framed chunks), manifest.json and manifest.sig, 0600. */
export function packageTar(dir, chunks, manifestBytes, signature) {
  const mtime = Math.floor(Date.now() / 1000);
  const parts = [tarHeader(dir + "/", 0, "5", 0o700, mtime)];
  const files = [["records.bin", concat(chunks.map(frame))], ["manifest.json", manifestBytes], ["manifest.sig", signature]];
  for (const [name, data] of files) {
    parts.push(tarHeader(`${dir}/${name}`, data.length, "0", 0o600, mtime), data);
    const pad = (512 - (data.length % 512)) % 512;
    if (pad) parts.push(new Uint8Array(pad));
  }
  parts.push(new Uint8Array(1024));
  return concat(parts);
}
