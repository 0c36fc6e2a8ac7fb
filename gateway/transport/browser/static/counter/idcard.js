// The resident ID card number as typed at the counter: its ISO 7064 MOD 11-2 check character and
// the birth date and sex it holds, the same rules as gateway/domain/resident_id.py. The screen says
// at once when the number was misread; the server checks it again on every call.

const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS = "10X98765432";

export function checkChar(first17) {
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += Number(first17[i]) * WEIGHTS[i];
  return CHECK_CHARS[sum % 11];
}

/** Full-width digits and letters as ASCII, spaces dropped, x as X: what the clerk meant. */
export function normalize(value) {
  return String(value || "")
    .replace(/[０-９Ｘｘ]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0))
    .replace(/\s/g, "")
    .toUpperCase();
}

/** What the number says: {state: "empty"|"partial"|"shape"|"check"|"birth"|"ok", birthDate, sex}. */
export function analyse(value) {
  const n = normalize(value);
  if (!n) return { state: "empty" };
  if (/^[0-9]{1,17}$/.test(n)) return { state: "partial" };
  if (!/^[0-9]{17}[0-9X]$/.test(n)) return { state: "shape" };
  if (checkChar(n.slice(0, 17)) !== n[17]) return { state: "check" };
  const y = Number(n.slice(6, 10));
  const m = Number(n.slice(10, 12));
  const d = Number(n.slice(12, 14));
  const born = new Date(Date.UTC(y, m - 1, d));
  if (born.getUTCFullYear() !== y || born.getUTCMonth() !== m - 1 || born.getUTCDate() !== d) {
    return { state: "birth" };
  }
  const birthDate = `${n.slice(6, 10)}-${n.slice(10, 12)}-${n.slice(12, 14)}`;
  const sex = Number(n[16]) % 2 ? "male" : "female";
  return { state: "ok", number: n, birthDate, sex };
}
