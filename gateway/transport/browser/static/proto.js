// A tiny protobuf wire-format reader: just enough for the google.rpc error details the API sends
// (ErrorInfo, BadRequest, RetryInfo). Varints and length-delimited fields; other wire types skipped.

function varint(buf, pos) {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new Error("truncated varint");
    const b = buf[pos++];
    value += (b & 0x7f) * scale; // multiplication, not shifts: exact up to 2^53
    if ((b & 0x80) === 0) return [value, pos];
    scale *= 128;
  }
  throw new Error("varint too long");
}

/** The fields of one message: [{no, wire, value}] (value: a number or a Uint8Array). */
export function fields(buf) {
  const out = [];
  let pos = 0;
  while (pos < buf.length) {
    let key;
    [key, pos] = varint(buf, pos);
    const no = Math.floor(key / 8);
    const wire = key % 8;
    let value;
    if (wire === 0) {
      [value, pos] = varint(buf, pos);
    } else if (wire === 2) {
      let len;
      [len, pos] = varint(buf, pos);
      if (pos + len > buf.length) throw new Error("truncated field");
      value = buf.subarray(pos, pos + len);
      pos += len;
    } else if (wire === 1) {
      pos += 8;
      continue;
    } else if (wire === 5) {
      pos += 4;
      continue;
    } else {
      throw new Error("unsupported wire type " + wire);
    }
    out.push({ no, wire, value });
  }
  return out;
}

const utf8 = new TextDecoder();

function text(f) {
  return f.wire === 2 ? utf8.decode(f.value) : "";
}

/** Base64 (standard or URL alphabet, padded or not) to bytes. */
export function base64Bytes(s) {
  let b = String(s).replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  b += "=".repeat((4 - (b.length % 4)) % 4);
  const bin = atob(b);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Connect error details [{type, value}] → {reason, domain, violations: [{field, description}], retrySeconds}. */
export function decodeDetails(details) {
  const out = { reason: "", domain: "", violations: [], retrySeconds: null };
  for (const d of Array.isArray(details) ? details : []) {
    let bytes;
    try {
      bytes = base64Bytes(d.value || "");
      const type = String(d.type || "").replace(/^type\.googleapis\.com\//, "");
      if (type === "google.rpc.ErrorInfo") {
        for (const f of fields(bytes)) {
          if (f.no === 1) out.reason = text(f);
          if (f.no === 2) out.domain = text(f);
        }
      } else if (type === "google.rpc.BadRequest") {
        for (const f of fields(bytes)) {
          if (f.no !== 1 || f.wire !== 2) continue;
          const v = { field: "", description: "" };
          for (const g of fields(f.value)) {
            if (g.no === 1) v.field = text(g);
            if (g.no === 2) v.description = text(g);
          }
          out.violations.push(v);
        }
      } else if (type === "google.rpc.RetryInfo") {
        let seconds = 0;
        let nanos = 0;
        for (const f of fields(bytes)) {
          if (f.no !== 1 || f.wire !== 2) continue;
          for (const g of fields(f.value)) {
            if (g.no === 1 && g.wire === 0) seconds = g.value;
            if (g.no === 2 && g.wire === 0) nanos = g.value;
          }
        }
        out.retrySeconds = seconds + nanos / 1e9;
      }
    } catch {
      // A detail we cannot read is left out; the error code alone still gives a message.
    }
  }
  return out;
}
