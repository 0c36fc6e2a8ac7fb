// The legal desk (the branch legal department's terminal, R5): staff sign-in, the request register
// with filters, a request's page (the letter, targets, categories, window, history, the approval's
// countdown), registration with the scanned letter, the decisions (approve or reject by another
// person, mark invalid, cancel) and fulfilment into a signed package that is verified here and
// downloaded. The staff token lives in an HttpOnly cookie this page never sees; the server decides
// every call, and what it refuses is said here in plain words.

import { ApiError, pageConfig, stream, unary } from "/api.js";
import { base64Bytes } from "/proto.js";
import { loadPublicKey, packageTar, sha256Hex, verify } from "./package.js";
import {
  applyStatic, currentLang, formatBytes, formatCount, formatDateTime, formatLeft, formatWait, has, localDate,
  localMidnight, setLang, t,
} from "./words.js";

const $ = (id) => document.getElementById(id);
const LEGAL = "/hallgate.v1.LegalService/";
const STAFF = "/hallgate.v1.StaffService/";
const STATES = ["REQUEST_STATE_AWAITING_APPROVAL", "REQUEST_STATE_AWAITING_DISCLOSURE", "REQUEST_STATE_DISCLOSING",
  "REQUEST_STATE_DISCLOSED", "REQUEST_STATE_DISCLOSURE_NOT_AVAILABLE", "REQUEST_STATE_REJECTED",
  "REQUEST_STATE_INVALID", "REQUEST_STATE_CANCELLED", "REQUEST_STATE_EXPIRED"];
const KINDS = ["AGENCY_KIND_PUBLIC_SECURITY", "AGENCY_KIND_PROCURATORATE", "AGENCY_KIND_STATE_SECURITY"];
const LEVELS = ["AGENCY_LEVEL_NATIONAL", "AGENCY_LEVEL_PROVINCIAL", "AGENCY_LEVEL_PREFECTURE", "AGENCY_LEVEL_COUNTY",
  "AGENCY_LEVEL_TOWNSHIP"];
const DEADLINES = ["any", "pending", "week", "lapsed"];
// A deadline filter looks at one state only: the server is asked for it, and every page is read
// (approvals waiting are few), so an approval older than the newest page of the register is found.
const DEADLINE_STATE = {
  pending: "REQUEST_STATE_AWAITING_DISCLOSURE", week: "REQUEST_STATE_AWAITING_DISCLOSURE",
  lapsed: "REQUEST_STATE_EXPIRED",
};
const DEADLINE_PAGES = 25; // of 200: beyond 5,000 the "more" button reads on
const MAX_LETTER = 8 * 1024 * 1024;
const WEEK = 7 * 86400 * 1000;
const URGENT = 3 * 86400 * 1000;
const DECISIONS = {
  approve: "ApproveRequest", reject: "RejectRequest", invalid: "MarkInvalid", cancel: "CancelRequest",
};
const MAY = {
  approve: ["legal_approver"], reject: ["legal_approver"], fulfil: ["legal_officer"],
  invalid: ["legal_officer", "legal_approver"], cancel: ["legal_officer", "legal_approver"],
};
const FROM = {
  approve: ["REQUEST_STATE_AWAITING_APPROVAL"], reject: ["REQUEST_STATE_AWAITING_APPROVAL"],
  fulfil: ["REQUEST_STATE_AWAITING_DISCLOSURE"],
  invalid: ["REQUEST_STATE_AWAITING_APPROVAL", "REQUEST_STATE_AWAITING_DISCLOSURE"],
  cancel: ["REQUEST_STATE_AWAITING_APPROVAL", "REQUEST_STATE_AWAITING_DISCLOSURE"],
};

const state = {
  config: { channel: "unknown", terminal: "", hall: "" },
  framing: false, // may this page frame a blob: (the letter)? From its own CSP.
  view: "sign-in",
  staff: null, // {id, role}
  busy: false,
  message: null, // {kind, key, params, list}
  list: { requests: [], next: "", loading: false, filters: null },
  request: null, // the LegalRequest shown
  letters: new Map(), // sha256 → {bytes, type, name}: scans this page holds (uploaded or opened here)
  letterUrl: "",
  delivery: null, // {requestId, deliveryId, chunks, manifestBytes, signature, state, result}
  packageUrl: "",
  publicKey: null, // {key, keyId}
  epoch: 0,
};

// ---------------------------------------------------------------------------------------------
// Messages and errors

function show(kind, key, params = {}, list = []) {
  state.message = { kind, key, params, list };
  renderMessage();
}

function clearMessage() {
  state.message = null;
  renderMessage();
  for (const el of document.querySelectorAll(".field-error")) {
    el.hidden = true;
    el.textContent = "";
  }
}

function renderMessage() {
  const err = $("error");
  const notice = $("notice");
  err.hidden = notice.hidden = true;
  err.replaceChildren();
  notice.replaceChildren();
  const m = state.message;
  if (!m) return;
  const el = m.kind === "error" ? err : notice;
  el.append(t(m.key, localParams(m.params)));
  if (m.list && m.list.length) {
    const ul = document.createElement("ul");
    for (const line of m.list) {
      const li = document.createElement("li");
      li.textContent = line;
      ul.appendChild(li);
    }
    el.appendChild(ul);
  }
  el.hidden = false;
  el.dataset.key = m.key;
  el.scrollIntoView({ block: "nearest" }); // a long request page: the answer is in view
}

function localParams(params) {
  const out = {};
  for (const [k, v] of Object.entries(params || {})) {
    if (v && typeof v === "object" && "wait" in v) out[k] = formatWait(v.wait);
    else if (v && typeof v === "object" && "state" in v) out[k] = t("state:" + v.state);
    else out[k] = v;
  }
  return out;
}

function fieldLabel(path) {
  const bare = path.replace(/\[\d+\]/g, "");
  for (const key of [bare, bare.split(".")[0]]) if (has("field:" + key)) return t("field:" + key);
  return path;
}

/** Field violations next to their fields (the server's words, our label); the rest in the banner. */
function showViolations(violations, scope) {
  const loose = [];
  for (const v of violations) {
    const path = v.field || "";
    const bare = path.replace(/\[\d+\]/g, "");
    const el = scope.querySelector(`[data-error-for="${CSS.escape(bare)}"]`)
      || scope.querySelector(`[data-error-for="${CSS.escape(bare.split(".")[0])}"]`);
    const index = /\[(\d+)\]/.exec(path);
    const text = t("fieldBad", { label: fieldLabel(path) + (index ? ` ${Number(index[1]) + 1}` : ""),
      what: v.description || "" });
    if (el) {
      el.textContent = el.hidden ? text : el.textContent + " " + text;
      el.hidden = false;
    }
    loose.push(text);
  }
  show("error", loose.length ? "errInvalid" : "errInvalidPlain", {}, loose);
}

function explain(err, where = "", scope = document) {
  if (err && err.name === "AbortError") return;
  if (!(err instanceof ApiError)) {
    console.warn("unexpected", err); // eslint-disable-line no-console
    show("error", "errInternal");
    return;
  }
  const reason = (err.reason || "").toLowerCase();
  const retry = err.retrySeconds != null ? { wait: err.retrySeconds } : null;
  switch (err.code) {
    case "invalid_argument":
      showViolations(err.violations, scope);
      return;
    case "unauthenticated":
      if (where === "sign-in") {
        show("error", "errBadCredentials");
      } else {
        signedOut();
        show("error", "errSession");
      }
      return;
    case "resource_exhausted":
      if (reason.startsWith("staff_locked") || reason.startsWith("locked")) show("error", retry ? "errLocked" : "errLockedNoTime", { retry });
      else show("error", retry ? "errThrottled" : "errThrottledNoTime", { retry });
      return;
    case "permission_denied":
      if (reason === "four_eyes") show("error", "errFourEyes");
      else if (reason === "role") show("error", "errRole");
      else if (reason === "wrong_terminal_for_role") show("error", "errWrongTerminalForRole");
      else if (reason.startsWith("outside_approved")) show("error", "errOutside");
      else if (reason === "legal_via_hall" || reason === "wrong_channel") show("error", "errLegalViaHall");
      else if (reason === "csrf" || reason === "origin_not_allowed") show("error", "errCsrf");
      else show("error", "errPermission");
      return;
    case "not_found":
      show("error", "errNotFound");
      return;
    case "failed_precondition":
      if (reason === "password_expired") show("error", "errPasswordExpired");
      else if (reason === "request_changed") show("error", "errChanged");
      else if (reason === "letter_missing") show("error", "errLetterMissing");
      else if (reason === "letter_corrupt") show("error", "errLetterCorrupt");
      else if (reason === "fulfilment_lapsed") show("error", "errLapsed");
      else if (reason.startsWith("request_")) show("error", "errState", { state: { state: "REQUEST_STATE_" + reason.slice(8).toUpperCase() } });
      else show("error", "errPrecondition");
      return;
    case "deadline_exceeded":
      show("error", "errTimeout");
      return;
    case "unavailable":
      show("error", err.network ? "errNetwork" : "errUnavailable");
      return;
    default:
      show("error", "errInternal");
  }
}

// ---------------------------------------------------------------------------------------------
// Views

const VIEWS = ["refused", "sign-in", "change", "list", "register", "request"];

function showView(view) {
  state.view = view;
  for (const v of VIEWS) $("view-" + v).hidden = v !== view;
  const inside = Boolean(state.staff) && !["refused", "sign-in", "change"].includes(view);
  $("nav").hidden = !inside;
  $("sign-out").hidden = !state.staff;
  $("nav-list").setAttribute("aria-current", String(view === "list"));
  $("nav-register").setAttribute("aria-current", String(view === "register"));
  $("nav-register").hidden = !state.staff || state.staff.role !== "legal_officer";
  document.body.dataset.view = view;
  if (view === "sign-in") $("staff-id").focus({ preventScroll: true });
  if (view === "change") $($("c-staff-id").value ? "c-current" : "c-staff-id").focus({ preventScroll: true });
}

function setBusy(busy) {
  state.busy = busy;
  document.body.classList.toggle("busy", busy);
  for (const b of document.querySelectorAll("main button, main input[type=file]")) {
    if (busy) {
      b.dataset.wasDisabled = String(b.disabled);
      b.disabled = true;
    } else if (b.dataset.wasDisabled !== undefined) {
      b.disabled = b.dataset.wasDisabled === "true";
      delete b.dataset.wasDisabled;
    }
  }
}

async function busyWith(fn) {
  if (state.busy) return;
  setBusy(true);
  try {
    await fn();
  } finally {
    setBusy(false);
  }
}

// ---------------------------------------------------------------------------------------------
// Sign-in and sign-out

async function signIn(event) {
  event.preventDefault();
  await busyWith(async () => {
    clearMessage();
    const staffId = $("staff-id").value.trim();
    try {
      const answer = await unary(STAFF + "SignIn", {
        staffId, password: $("staff-password").value, totpCode: $("totp").value.replace(/\s/g, ""),
      });
      state.staff = { id: staffId, role: answer.role || "" };
      $("form-sign-in").reset();
      renderWho();
      showView("list");
      await loadList(true);
    } catch (err) {
      $("staff-password").value = "";
      $("totp").value = "";
      explain(err, "sign-in");
      if (err instanceof ApiError && (err.reason || "").toLowerCase() === "password_expired") {
        toChange(staffId); // the message stays: why the form is shown
      }
    }
  });
}

function toChange(staffId = "") {
  $("form-change").reset();
  $("c-staff-id").value = staffId || $("staff-id").value.trim();
  showView("change");
}

async function changePassword(event) {
  event.preventDefault();
  await busyWith(async () => {
    clearMessage();
    if ($("c-new").value !== $("c-repeat").value) {
      $("c-repeat-error").textContent = t("errRepeat");
      $("c-repeat-error").hidden = false;
      show("error", "errRepeat");
      return;
    }
    const staffId = $("c-staff-id").value.trim();
    try {
      await unary(STAFF + "ChangePassword", {
        staffId, currentPassword: $("c-current").value, newPassword: $("c-new").value,
        totpCode: $("c-totp").value.replace(/\s/g, ""),
      });
      $("form-change").reset();
      $("form-sign-in").reset();
      $("staff-id").value = staffId;
      showView("sign-in");
      $("staff-password").focus({ preventScroll: true });
      show("notice", "passwordChanged");
    } catch (err) {
      for (const id of ["c-current", "c-new", "c-repeat", "c-totp"]) $(id).value = "";
      explain(err, "sign-in", $("view-change"));
    }
  });
}

function signedOut() {
  state.epoch++;
  state.staff = null;
  state.request = null;
  state.list = { requests: [], next: "", loading: false, filters: null };
  dropDelivery();
  dropLetterUrl();
  state.letters.clear();
  $("requests-body").replaceChildren();
  $("form-register").reset();
  resetOfficers();
  renderWho();
  showView("sign-in");
}

async function signOut() {
  clearMessage();
  try {
    await unary(STAFF + "SignOut", {});
  } catch {
    // the cookie is cleared either way when the session is gone; the screen is cleared regardless
  }
  signedOut();
  show("notice", "signedOut");
}

function renderWho() {
  const who = $("who");
  who.hidden = !state.staff;
  who.textContent = state.staff ? t("who", { staff: state.staff.id, role: t("role:" + state.staff.role) }) : "";
  const term = $("terminal");
  term.hidden = !state.config.terminal;
  term.textContent = t("terminal", { terminal: state.config.terminal });
}

// ---------------------------------------------------------------------------------------------
// The register

function readFilters() {
  return {
    state: $("f-state").value, agency: $("f-agency").value.trim(), caseNumber: $("f-case").value.trim(),
    deadline: $("f-deadline").value,
  };
}

async function loadList(fresh) {
  if (!state.staff || (!fresh && state.list.loading)) return;
  const epoch = state.epoch;
  if (fresh) {
    state.list = { requests: [], next: "", loading: true, filters: readFilters() };
    $("requests-body").replaceChildren();
  }
  // A load answers only into the list it was started for: a newer load (other filters, a
  // refresh) supersedes it, and its late answer must neither add rows nor end the newer one.
  const list = state.list;
  const current = () => epoch === state.epoch && list === state.list;
  list.loading = true;
  renderListStatus();
  const f = list.filters;
  const needed = DEADLINE_STATE[f.deadline];
  try {
    // A state filter other than the one a deadline needs: nothing can match both.
    for (let pages = 0; !(needed && f.state && f.state !== needed); pages++) {
      const body = { pageSize: needed ? 200 : 50 };
      if (needed || f.state) body.state = needed || f.state;
      if (f.agency) body.agencyName = f.agency;
      if (f.caseNumber) body.caseNumber = f.caseNumber;
      if (list.next) body.pageToken = list.next;
      const answer = await unary(LEGAL + "ListRequests", body);
      if (!current()) return;
      list.requests.push(...(answer.requests || []));
      list.next = answer.nextPageToken || "";
      if (!needed || !list.next || pages + 1 >= DEADLINE_PAGES) break;
    }
  } catch (err) {
    if (current()) explain(err, "list", $("view-list"));
  } finally {
    if (current()) {
      list.loading = false;
      renderList();
    }
  }
}

function deadlineOf(r) {
  return r.state === "REQUEST_STATE_AWAITING_DISCLOSURE" && r.approvalExpiresAt ? Date.parse(r.approvalExpiresAt) : null;
}

function matchesDeadline(r, which) {
  const at = deadlineOf(r);
  switch (which) {
    case "pending":
      return at !== null;
    case "week":
      return at !== null && at - Date.now() <= WEEK;
    case "lapsed":
      return r.state === "REQUEST_STATE_EXPIRED";
    default:
      return true;
  }
}

function shownRequests() {
  const which = (state.list.filters || {}).deadline || "any";
  return state.list.requests.filter((r) => matchesDeadline(r, which));
}

function renderList() {
  const body = $("requests-body");
  body.replaceChildren();
  for (const r of shownRequests()) {
    const tr = document.createElement("tr");
    tr.dataset.requestId = r.requestId;
    tr.dataset.state = r.state;
    const idCell = document.createElement("td");
    const a = document.createElement("button");
    a.type = "button";
    a.className = "link open-request";
    a.dataset.requestId = r.requestId;
    a.textContent = r.requestId;
    idCell.appendChild(a);
    tr.appendChild(idCell);
    const cells = [stateBadge(r.state), (r.agency || {}).name || "", r.caseNumber || "", formatDateTime(r.registeredAt)];
    for (const c of cells) {
      const td = document.createElement("td");
      if (c instanceof Node) td.appendChild(c);
      else td.textContent = c;
      tr.appendChild(td);
    }
    const dl = document.createElement("td");
    dl.className = "deadline";
    fillDeadline(dl, r);
    tr.appendChild(dl);
    body.appendChild(tr);
  }
  $("more").hidden = !state.list.next;
  renderListStatus();
}

function fillDeadline(el, r) {
  const at = deadlineOf(r);
  el.classList.remove("urgent");
  if (at === null) {
    el.textContent = r.state === "REQUEST_STATE_EXPIRED" ? t("state:REQUEST_STATE_EXPIRED") : "—";
    return;
  }
  const left = at - Date.now();
  el.textContent = left > 0 ? formatLeft(left) : t("state:REQUEST_STATE_EXPIRED");
  el.title = formatDateTime(r.approvalExpiresAt);
  el.classList.toggle("urgent", left < URGENT);
}

function renderListStatus() {
  const status = $("list-status");
  const l = state.list;
  status.dataset.state = l.loading ? "loading" : "done";
  const n = shownRequests().length;
  status.dataset.count = String(n);
  if (l.loading) status.textContent = t("listLoading");
  else if (!n) status.textContent = t("listEmpty");
  else status.textContent = t(l.filters && l.filters.deadline !== "any" ? "listCountFiltered" : "listCount", { count: formatCount(n) });
}

function stateBadge(s) {
  const span = document.createElement("span");
  span.className = "state";
  span.dataset.state = s;
  span.textContent = t("state:" + s);
  return span;
}

// ---------------------------------------------------------------------------------------------
// Registration

function officerRow(name = "", badge = "") {
  const row = document.createElement("div");
  row.className = "officer";
  const n = document.createElement("input");
  n.type = "text";
  n.maxLength = 64;
  n.className = "officer-name";
  n.placeholder = t("officerName");
  n.setAttribute("aria-label", t("officerName"));
  n.value = name;
  const b = document.createElement("input");
  b.type = "text";
  b.maxLength = 32;
  b.className = "officer-badge";
  b.placeholder = t("officerBadge");
  b.setAttribute("aria-label", t("officerBadge"));
  b.value = badge;
  b.spellcheck = false;
  const x = document.createElement("button");
  x.type = "button";
  x.className = "link remove-officer";
  x.textContent = t("removeOfficer");
  row.append(n, b, x);
  return row;
}

function resetOfficers() {
  $("r-officers").replaceChildren(officerRow());
}

function fillSelect(select, values, prefix, blank) {
  const chosen = select.value;
  select.replaceChildren();
  if (blank) {
    const o = document.createElement("option");
    o.value = "";
    o.textContent = t(blank);
    select.appendChild(o);
  }
  for (const v of values) {
    const o = document.createElement("option");
    o.value = v;
    o.textContent = t(prefix + v);
    select.appendChild(o);
  }
  select.value = chosen;
  if (select.selectedIndex < 0) select.selectedIndex = 0;
}

function toBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

async function readFile(input) {
  const file = input.files && input.files[0];
  if (!file) return null;
  return { bytes: new Uint8Array(await file.arrayBuffer()), type: file.type || "application/octet-stream", name: file.name };
}

function renderLetterChosen() {
  const file = $("r-letter-file").files[0];
  $("r-letter-info").textContent = file ? t("letterChosen", { name: file.name, size: formatBytes(file.size), type: file.type || "?" }) : "";
}

async function register(event) {
  event.preventDefault();
  await busyWith(async () => {
    clearMessage();
    const scope = $("view-register");
    const letter = await readFile($("r-letter-file"));
    if (!letter) {
      const el = scope.querySelector('[data-error-for="letter.content"]');
      el.textContent = t("errNoFile");
      el.hidden = false;
      show("error", "errNoFile");
      return;
    }
    if (letter.bytes.length > MAX_LETTER) {
      show("error", "errFileTooLarge");
      return;
    }
    const officers = [...$("r-officers").querySelectorAll(".officer")]
      .map((row) => ({ name: row.querySelector(".officer-name").value.trim(), badgeNumber: row.querySelector(".officer-badge").value.trim() }))
      .filter((o) => o.name || o.badgeNumber);
    const categories = [];
    if ($("r-cat-subscriber").checked) categories.push("DATA_CATEGORY_SUBSCRIBER_INFO");
    if ($("r-cat-calls").checked) categories.push("DATA_CATEGORY_CALL_DETAILS");
    const window = {};
    const start = localMidnight($("r-window-start").value);
    const end = localMidnight($("r-window-last").value, 1);
    if (start) window.start = start;
    if (end) window.end = end;
    const body = {
      agency: { kind: $("r-agency-kind").value || "AGENCY_KIND_UNSPECIFIED", name: $("r-agency-name").value.trim(),
        level: $("r-agency-level").value || "AGENCY_LEVEL_UNSPECIFIED" },
      letter: { reference: $("r-letter-reference").value.trim(), date: $("r-letter-date").value,
        mediaType: letter.type, content: toBase64(letter.bytes) },
      legalBasis: $("r-legal-basis").value.trim(), caseNumber: $("r-case-number").value.trim(), officers,
      targets: $("r-targets").value.split(/[\s,;，；]+/).filter(Boolean), categories, window,
    };
    const epoch = state.epoch;
    try {
      const answer = await unary(LEGAL + "RegisterRequest", body);
      if (epoch !== state.epoch) return;
      const r = answer.request;
      state.letters.set((r.letter || {}).sha256 || (await sha256Hex(letter.bytes)), letter);
      $("form-register").reset();
      resetOfficers();
      renderLetterChosen();
      await openRequest(r.requestId, r);
      show("notice", "registered", { id: r.requestId });
    } catch (err) {
      if (epoch === state.epoch) explain(err, "register", scope);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// A request's page

async function openRequest(requestId, known = null) {
  const epoch = state.epoch;
  clearMessage();
  if (!state.delivery || state.delivery.requestId !== requestId) dropDelivery();
  try {
    const answer = await unary(LEGAL + "GetRequest", { requestId });
    if (epoch !== state.epoch) return;
    state.request = answer.request;
  } catch (err) {
    if (epoch !== state.epoch) return;
    if (!known) {
      explain(err, "get");
      return;
    }
    state.request = known;
    explain(err, "get");
  }
  $("q-reason").value = "";
  renderRequest();
  showView("request");
  await fetchLetter(epoch);
}

/** The letter as registered (GetLetter), checked here against the request's SHA-256 too, then shown. */
async function fetchLetter(epoch) {
  const r = state.request;
  const info = (r && r.letter) || {};
  if (!info.sha256 || state.letters.has(info.sha256)) return;
  try {
    const answer = await unary(LEGAL + "GetLetter", { requestId: r.requestId });
    if (epoch !== state.epoch || state.request !== r) return;
    const bytes = base64Bytes(answer.content || "");
    const sha = await sha256Hex(bytes);
    if (sha !== info.sha256) {
      show("error", "letterMismatch", { sha });
      return;
    }
    state.letters.set(sha, { bytes, type: answer.mediaType || info.mediaType, name: `${r.requestId}-letter` });
    renderLetter();
  } catch (err) {
    if (epoch === state.epoch) explain(err, "get");
  }
}

function fact(dl, key, value) {
  const dt = document.createElement("dt");
  dt.textContent = t(key);
  const dd = document.createElement("dd");
  dd.dataset.fact = key.replace(/^fact:/, "");
  dd.textContent = value;
  dl.append(dt, dd);
}

function renderRequest() {
  const r = state.request;
  if (!r) return;
  $("view-request").dataset.requestId = r.requestId;
  $("view-request").dataset.state = r.state;
  $("h-request").textContent = t("requestTitle", { id: r.requestId });
  const badge = $("q-state");
  badge.dataset.state = r.state;
  badge.textContent = t("state:" + r.state);
  const facts = $("q-facts");
  facts.replaceChildren();
  const a = r.agency || {};
  fact(facts, "fact:agency", t("agencyLine", { name: a.name || "", kind: t("kind:" + a.kind), level: t("level:" + a.level) }));
  fact(facts, "fact:case", r.caseNumber || "");
  fact(facts, "fact:basis", r.legalBasis || "");
  fact(facts, "fact:officers", (r.officers || []).map((o) => t("officerLine", { name: o.name, badge: o.badgeNumber })).join("；"));
  fact(facts, "fact:registered", t("byAt", { who: r.registeredBy || "", at: formatDateTime(r.registeredAt) }));
  if (r.approvedBy) {
    fact(facts, "fact:approved", t("byAt", { who: r.approvedBy, at: formatDateTime(r.approvedAt) }));
    fact(facts, "fact:expires", formatDateTime(r.approvalExpiresAt));
  }
  const targets = $("q-targets");
  targets.replaceChildren();
  for (const x of r.targets || []) {
    const li = document.createElement("li");
    li.textContent = x;
    targets.appendChild(li);
  }
  const cats = $("q-categories");
  cats.replaceChildren();
  for (const c of r.categories || []) {
    const li = document.createElement("li");
    li.dataset.category = c;
    li.textContent = t("cat:" + c);
    cats.appendChild(li);
  }
  const w = r.window || {};
  $("q-window").textContent = t("windowLine", { start: formatDateTime(w.start), end: formatDateTime(w.end) });
  renderHistory();
  renderCountdown();
  renderActions();
  renderLetter();
  renderDelivery();
}

function renderHistory() {
  const ol = $("q-history");
  ol.replaceChildren();
  for (const h of (state.request || {}).history || []) {
    const li = document.createElement("li");
    li.dataset.to = h.toState || "";
    const time = document.createElement("time");
    time.dateTime = h.at || "";
    time.textContent = formatDateTime(h.at);
    const what = document.createElement("span");
    what.className = "h-what";
    what.textContent = h.fromState && h.fromState !== "REQUEST_STATE_UNSPECIFIED"
      ? t("historyLine", { from: t("state:" + h.fromState), to: t("state:" + h.toState) }) : t("state:" + h.toState);
    const who = document.createElement("span");
    who.className = "h-who";
    who.textContent = t("historyBy", { who: h.actorStaffId || "", role: t("role:" + (h.actorRole || "system")) });
    const why = document.createElement("span");
    why.className = "h-why";
    why.textContent = h.reason || "";
    li.append(time, what, who, why);
    ol.appendChild(li);
  }
}

function renderCountdown() {
  const el = $("q-countdown");
  const r = state.request;
  el.classList.remove("urgent");
  if (!r) {
    el.hidden = true;
    return;
  }
  const at = deadlineOf(r);
  if (at !== null) {
    const left = at - Date.now();
    const urgent = left < URGENT;
    el.textContent = left > 0 ? t(urgent ? "countdownUrgent" : "countdown", { left: formatLeft(left), at: formatDateTime(r.approvalExpiresAt) })
      : t("lapsed", { at: formatDateTime(r.approvalExpiresAt) });
    el.classList.toggle("urgent", urgent);
    el.dataset.expiresAt = r.approvalExpiresAt;
    el.hidden = false;
  } else if (r.state === "REQUEST_STATE_EXPIRED" && r.approvalExpiresAt) {
    el.textContent = t("lapsed", { at: formatDateTime(r.approvalExpiresAt) });
    el.hidden = false;
  } else {
    el.hidden = true;
  }
}

function renderActions() {
  const r = state.request;
  const role = state.staff ? state.staff.role : "";
  let any = false;
  for (const [action, id] of [["approve", "act-approve"], ["reject", "act-reject"], ["fulfil", "act-fulfil"],
    ["invalid", "act-invalid"], ["cancel", "act-cancel"]]) {
    const on = Boolean(r) && MAY[action].includes(role) && FROM[action].includes(r.state);
    $(id).hidden = !on;
    any = any || on;
  }
  $("q-actions").hidden = !any;
}

async function decide(action) {
  const r = state.request;
  if (!r) return;
  await busyWith(async () => {
    clearMessage();
    const epoch = state.epoch;
    try {
      const answer = await unary(LEGAL + DECISIONS[action], { requestId: r.requestId, reason: $("q-reason").value.trim() });
      if (epoch !== state.epoch) return;
      await openRequest(r.requestId, answer.request);
      show("notice", "done", { id: r.requestId, state: { state: state.request.state } });
    } catch (err) {
      if (epoch === state.epoch) explain(err, action, $("q-actions"));
    }
  });
}

// --- the letter

function dropLetterUrl() {
  if (state.letterUrl) URL.revokeObjectURL(state.letterUrl);
  state.letterUrl = "";
  $("q-letter-frame").removeAttribute("src");
  $("q-letter-view").hidden = true;
  const dl = $("q-letter-download");
  dl.removeAttribute("href");
  dl.hidden = true;
}

function renderLetter() {
  const r = state.request;
  const info = (r && r.letter) || {};
  const dl = $("q-letter");
  dl.replaceChildren();
  fact(dl, "fact:reference", info.reference || "");
  fact(dl, "fact:date", info.date || "");
  fact(dl, "fact:type", info.mediaType || "");
  fact(dl, "fact:size", formatBytes(info.sizeBytes));
  fact(dl, "fact:sha256", info.sha256 || "");
  const held = state.letters.get(info.sha256);
  const frame = $("q-letter-frame");
  const note = $("q-letter-note");
  const want = held ? info.sha256 : "";
  if ($("q-letter-view").dataset.sha256 !== want || !held) {
    dropLetterUrl();
    $("q-letter-view").dataset.sha256 = want;
    if (held) {
      state.letterUrl = URL.createObjectURL(new Blob([held.bytes], { type: info.mediaType || held.type }));
      const link = $("q-letter-download");
      link.href = state.letterUrl;
      link.download = `${r.requestId}-letter${extension(info.mediaType)}`;
      link.hidden = false;
      if (state.framing && info.mediaType === "application/pdf") {
        frame.src = state.letterUrl;
        $("q-letter-view").hidden = false;
      }
    }
  }
  $("q-letter-open-label").hidden = Boolean(held);
  if (!held) note.textContent = t("letterNotHeld");
  else if (info.mediaType !== "application/pdf") note.textContent = t("letterNotPdf");
  else if (!state.framing) note.textContent = t("letterNoFrame");
  else note.textContent = t("letterShown");
}

function extension(type) {
  return { "application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png", "image/tiff": ".tiff" }[type] || "";
}

async function openLetter() {
  const r = state.request;
  const file = await readFile($("q-letter-open"));
  $("q-letter-open").value = "";
  if (!r || !file) return;
  const sha = await sha256Hex(file.bytes);
  if (sha !== (r.letter || {}).sha256) {
    show("error", "letterMismatch", { sha });
    return;
  }
  clearMessage();
  state.letters.set(sha, file);
  renderLetter();
}

// --- fulfilment, the package and its verification

function dropDelivery() {
  if (state.packageUrl) URL.revokeObjectURL(state.packageUrl);
  state.packageUrl = "";
  state.delivery = null;
}

async function fulfil() {
  const r = state.request;
  if (!r) return;
  await busyWith(async () => {
    clearMessage();
    dropDelivery();
    const epoch = state.epoch;
    const d = { requestId: r.requestId, deliveryId: "", chunks: [], manifestBytes: null, signature: null, state: "running", result: null };
    state.delivery = d;
    renderDelivery();
    try {
      for await (const part of stream(LEGAL + "FulfilRequest", { requestId: r.requestId, reason: $("q-reason").value.trim() })) {
        if (epoch !== state.epoch || state.delivery !== d) return;
        if (part.header) d.deliveryId = part.header.deliveryId || "";
        else if (part.records !== undefined) d.chunks.push(base64Bytes(part.records));
        else if (part.manifest) {
          d.manifestBytes = base64Bytes(part.manifest.manifestJson || "");
          d.signature = base64Bytes(part.manifest.signature || "");
        }
        if (d.chunks.length % 50 === 0) renderDelivery();
      }
      if (epoch !== state.epoch || state.delivery !== d) return;
      d.state = d.manifestBytes ? "done" : "broken";
    } catch (err) {
      if (epoch !== state.epoch || state.delivery !== d) return;
      // A stream that ended without its signed manifest is no delivery: nothing of it is kept.
      d.state = d.chunks.length || d.deliveryId ? "broken" : "refused";
      d.chunks = [];
      explain(err, "fulfil", $("q-actions"));
    }
    if (d.state === "broken") d.chunks = [];
    if (d.state === "refused") {
      state.delivery = null;
      renderDelivery();
      return;
    }
    if (d.state === "done") await checkDelivery();
    await openRequest(r.requestId, r);
  });
}

async function checkDelivery() {
  const d = state.delivery;
  if (!d || d.state !== "done") return;
  d.result = await verify({ manifestBytes: d.manifestBytes, signature: d.signature, chunks: d.chunks,
    publicKey: state.publicKey, request: state.request });
  if (!d.deliveryId && d.result.doc) d.deliveryId = d.result.doc.delivery_id || "";
  if (!state.packageUrl) {
    const tar = packageTar(d.deliveryId || d.requestId, d.chunks, d.manifestBytes, d.signature);
    state.packageUrl = URL.createObjectURL(new Blob([tar], { type: "application/x-tar" }));
  }
}

/** A request delivered before: only its signed manifest is left (from GetRequest). */
async function checkManifestOnly() {
  const r = state.request;
  const m = r && r.manifest;
  if (!m || !m.manifestJson) return null;
  return verify({ manifestBytes: base64Bytes(m.manifestJson), signature: base64Bytes(m.signature || ""), chunks: null,
    publicKey: state.publicKey, request: r });
}

let manifestEpoch = 0;

function renderDelivery() {
  const box = $("q-delivery");
  const r = state.request;
  const d = state.delivery && r && state.delivery.requestId === r.requestId ? state.delivery : null;
  const hasManifest = Boolean(r && r.manifest && r.manifest.manifestJson);
  box.hidden = !d && !hasManifest;
  const status = $("d-status");
  const link = $("d-download");
  $("d-key-note").textContent = state.publicKey ? t("keyLoaded", { id: state.publicKey.keyId }) : t("keyNote");
  if (box.hidden) return;
  if (d) {
    status.dataset.state = d.state;
    if (d.state === "running") status.textContent = t("deliveryRunning", { chunks: formatCount(d.chunks.length) });
    else if (d.state === "broken") status.textContent = t("deliveryBroken");
    else {
      const calls = d.result && d.result.doc ? (d.result.doc.totals || {}).call_details : 0;
      status.textContent = t("deliveryDone", { id: d.deliveryId, chunks: formatCount(d.chunks.length), calls: formatCount(calls) });
    }
    link.hidden = !(d.state === "done" && state.packageUrl);
    if (!link.hidden) {
      link.href = state.packageUrl;
      link.download = `${d.deliveryId || d.requestId}.tar`;
      link.title = t("packageHint");
    }
    renderChecks(d.result);
    return;
  }
  link.hidden = true;
  status.dataset.state = "manifest";
  status.textContent = t("manifestOnly");
  const mine = ++manifestEpoch;
  checkManifestOnly().then((result) => {
    if (mine === manifestEpoch) renderChecks(result);
  });
}

function renderChecks(result) {
  const ul = $("d-checks");
  ul.replaceChildren();
  const box = $("q-delivery");
  delete box.dataset.verified;
  if (!result) return;
  for (const c of result.checks) {
    const li = document.createElement("li");
    li.dataset.check = c.id;
    li.dataset.ok = c.ok === null ? "pending" : String(c.ok);
    const mark = document.createElement("span");
    mark.className = "mark";
    mark.textContent = t(c.ok === null ? "check:pending" : c.ok ? "check:ok" : "check:failed");
    const what = document.createElement("span");
    what.textContent = t("check:" + c.id, c.params || {});
    li.append(mark, what);
    ul.appendChild(li);
  }
  const failed = result.checks.filter((c) => c.ok === false);
  const pending = result.checks.some((c) => c.ok === null && c.id === "signature");
  const verdict = document.createElement("li");
  verdict.className = "verdict";
  verdict.dataset.check = "verdict";
  if (failed.length) verdict.textContent = t("verifyFailed", { what: failed.map((c) => t("check:" + c.id, c.params || {})).join("; ") });
  else verdict.textContent = t(pending ? "verifiedNoKey" : "verifiedAll");
  box.dataset.verified = failed.length ? "failed" : pending ? "partly" : "yes";
  ul.appendChild(verdict);
}

async function loadKey() {
  const input = $("d-key");
  const file = input.files && input.files[0];
  input.value = "";
  if (!file) return;
  try {
    state.publicKey = await loadPublicKey(await file.text());
  } catch {
    show("error", "keyBad");
    return;
  }
  clearMessage();
  if (state.delivery && state.delivery.state === "done") await checkDelivery();
  renderDelivery();
}

// ---------------------------------------------------------------------------------------------
// Start

function renderAll() {
  applyStatic();
  $("lang").textContent = currentLang() === "en" ? "中文" : "English";
  $("lang").lang = currentLang() === "en" ? "zh-CN" : "en";
  fillSelect($("f-state"), STATES, "state:", "anyState");
  fillSelect($("f-deadline"), DEADLINES, "deadline:", null);
  fillSelect($("r-agency-kind"), KINDS, "kind:", "choose");
  fillSelect($("r-agency-level"), LEVELS, "level:", "choose");
  for (const row of $("r-officers").querySelectorAll(".officer")) {
    row.querySelector(".officer-name").placeholder = t("officerName");
    row.querySelector(".officer-badge").placeholder = t("officerBadge");
    row.querySelector(".remove-officer").textContent = t("removeOfficer");
  }
  renderWho();
  renderMessage();
  renderList();
  renderLetterChosen();
  if (state.request) renderRequest();
  if (state.config.channel !== "legal") renderRefusal();
}

function renderRefusal() {
  const c = state.config;
  const what = c.terminal ? `${c.terminal} (${c.channel})` : c.channel === "web" || c.channel === "none" ? t("refusedNone") : c.channel;
  $("refused-text").textContent = t("refusedText", { what });
}

/** Whether this page's own Content-Security-Policy lets it frame a blob: (the letter). */
async function framingAllowed() {
  try {
    const response = await fetch(location.pathname, { method: "HEAD", credentials: "same-origin", cache: "no-store" });
    const csp = response.headers.get("content-security-policy") || "";
    return csp.split(";").some((d) => {
      const parts = d.trim().split(/\s+/);
      return (parts[0] === "frame-src" || parts[0] === "child-src") && parts.includes("blob:");
    });
  } catch {
    return false;
  }
}

async function start() {
  $("form-sign-in").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("form-change").addEventListener("submit", changePassword);
  $("to-change").addEventListener("click", () => {
    clearMessage();
    toChange();
  });
  $("change-back").addEventListener("click", () => {
    clearMessage();
    $("form-change").reset();
    showView("sign-in");
  });
  $("lang").addEventListener("click", () => {
    setLang(currentLang() === "en" ? "zh-CN" : "en");
    renderAll();
  });
  $("nav-list").addEventListener("click", () => {
    clearMessage();
    showView("list");
    loadList(true);
  });
  $("nav-register").addEventListener("click", () => {
    clearMessage();
    if (!$("r-letter-date").value) $("r-letter-date").value = localDate();
    showView("register");
  });
  $("form-filters").addEventListener("submit", (e) => {
    e.preventDefault();
    clearMessage();
    loadList(true);
  });
  $("refresh").addEventListener("click", () => loadList(true));
  $("more").addEventListener("click", () => loadList(false));
  $("requests-body").addEventListener("click", (e) => {
    const b = e.target.closest("button.open-request");
    if (b) busyWith(() => openRequest(b.dataset.requestId));
  });
  $("back").addEventListener("click", () => {
    clearMessage();
    showView("list");
    loadList(true);
  });
  $("form-register").addEventListener("submit", register);
  $("r-add-officer").addEventListener("click", () => {
    if ($("r-officers").children.length < 10) $("r-officers").appendChild(officerRow());
  });
  $("r-officers").addEventListener("click", (e) => {
    const b = e.target.closest("button.remove-officer");
    if (b && $("r-officers").children.length > 1) b.parentElement.remove();
  });
  $("r-letter-file").addEventListener("change", renderLetterChosen);
  $("act-approve").addEventListener("click", () => decide("approve"));
  $("act-reject").addEventListener("click", () => decide("reject"));
  $("act-invalid").addEventListener("click", () => decide("invalid"));
  $("act-cancel").addEventListener("click", () => decide("cancel"));
  $("act-fulfil").addEventListener("click", fulfil);
  $("q-letter-open").addEventListener("change", () => busyWith(openLetter));
  $("d-key").addEventListener("change", () => busyWith(loadKey));
  // The approval's countdown (and the register's deadlines) stay current.
  setInterval(() => {
    if (state.view === "request") renderCountdown();
    if (state.view === "list") for (const td of $("requests-body").querySelectorAll("td.deadline")) {
      const r = state.list.requests.find((x) => x.requestId === td.parentElement.dataset.requestId);
      if (r) fillDeadline(td, r);
    }
  }, 30_000);

  resetOfficers();
  renderAll();
  try {
    state.config = { ...state.config, ...(await pageConfig()) };
  } catch (err) {
    explain(err, "config");
  }
  state.framing = await framingAllowed();
  document.body.dataset.channel = state.config.channel;
  renderAll();
  if (state.config.channel !== "legal") {
    showView("refused"); // nothing else: no sign-in form, no call
  } else {
    showView("sign-in");
  }
  document.body.dataset.ready = "true";
}

start();
