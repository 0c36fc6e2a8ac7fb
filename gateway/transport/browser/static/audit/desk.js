// The audit desk (audit terminal): an auditor signs in with password + TOTP, queries the trail
// (table with paging, chart of events per day), verifies the chain, exports the query's results as
// a verifiable JSON Lines file, and reads incidents and the trail's archive-loan calls. The staff
// session lives in an HttpOnly cookie this page never sees; everything shown is cleared on sign-out.

import { ApiError, pageConfig, stream, unary } from "/api.js";
import { base64Bytes } from "/proto.js";
import { bucket, drawChart, MAX_DAYS } from "./chart.js";
import {
  applyStatic, currentLang, dayOf, formatBytes, formatCount, formatDateTime, formatWait, setLang, t, word,
} from "./i18n.js";

const $ = (id) => document.getElementById(id);
const STAFF = "/hallgate.v1.StaffService/";
const AUDIT = "/hallgate.v1.AuditService/";
const INCIDENT = "/hallgate.v1.IncidentService/";
const CHANNELS = ["kiosk", "web", "clerk", "legal", "audit", "maintenance", "unidentified"];
const DECISIONS = ["allowed", "denied", "invalid", "failed"];
const INCIDENT_STATES = ["REPORTED", "CONTAINED", "NOTIFIED", "CLOSED"];
const LENDING = ["RegisterDocument", "RequestLoan", "ApproveLoan", "RejectLoan", "CancelLoan", "HandOut", "RecordReturn",
  "GetDocument", "ListLoans"].map((m) => "/hallgate.v1.LendingService/" + m);
const METHODS = {
  KioskService: ["RequestOneTimeCode", "Authenticate", "ListCallDetails", "EndSession", "ListAccessHistory"],
  ClerkService: ["RequestCustomerCode", "OpenCustomerSession", "GetCustomerProfile", "ResetServicePassword",
    "CloseCustomerSession", "GetCodeDelivery"],
  StaffService: ["SignIn", "ChangePassword", "SignOut"],
  LegalService: ["RegisterRequest", "ApproveRequest", "RejectRequest", "MarkInvalid", "CancelRequest", "FulfilRequest",
    "ListRequests", "GetRequest"],
  LendingService: ["RegisterDocument", "RequestLoan", "ApproveLoan", "RejectLoan", "CancelLoan", "HandOut",
    "RecordReturn", "GetDocument", "ListLoans"],
  AuditService: ["QueryEvents", "VerifyChain", "ExportEvents"],
  IncidentService: ["ReportIncident", "GetIncident", "ListIncidents", "AddRemediationStep", "Transition",
    "RecordNotification", "ListAffected", "RevealNumbers"],
};
const FULL_METHODS = Object.entries(METHODS).flatMap(([s, ms]) => ms.map((m) => `/hallgate.v1.${s}/${m}`));
// Where a BadRequest violation's field is shown: its error element, its input, the words of its hint.
const FIELDS = {
  staff_id: { error: "staff_id-error", input: "staff-id", label: "staffId", hint: "hint_generic" },
  password: { error: "password-error", input: "password", label: "password", hint: "hint_required" },
  totp_code: { error: "totp_code-error", input: "totp", label: "totp", hint: "hint_generic" },
  current_password: { error: "current_password-error", input: "c-current", label: "currentPassword", hint: "hint_required" },
  new_password: { error: "new_password-error", input: "c-new", label: "newPassword", hint: "hint_new_password" },
  new_password2: { error: "new_password2-error", input: "c-new2", label: "newPasswordAgain", hint: "hint_generic" },
  "filter.msisdn": { error: "msisdn-error", input: "f-msisdn", label: "fMsisdn", hint: "hint_msisdn" },
  "filter.staff_id": { error: "staff_id-f-error", input: "f-staff", label: "fStaff", hint: "hint_text" },
  "filter.terminal": { error: "terminal-error", input: "f-terminal", label: "fTerminal", hint: "hint_text" },
  "filter.hall": { error: "hall-error", input: "f-hall", label: "fHall", hint: "hint_text" },
  "filter.method": { error: "method-error", input: "f-method", label: "fMethod", hint: "hint_text" },
  "filter.channel": { error: "channel-error", input: "f-channel", label: "fChannel", hint: "hint_text" },
  "filter.decision": { error: "decision-error", input: "f-decision", label: "fDecision", hint: "hint_decision" },
  "filter.start_time": { error: "start_time-error", input: "f-start", label: "fStart", hint: "hint_time" },
  "filter.end_time": { error: "end_time-error", input: "f-end", label: "fEnd", hint: "hint_end_before" },
};
const VIEWS = ["refusal", "sign-in", "change", "desk"];

const state = {
  config: null,
  view: "sign-in",
  staff: null, // {id, role}
  tab: "query",
  message: null, // {kind, key, params}
  fieldErrors: {}, // field → {key, params}
  events: [], // the query's results, oldest first
  query: null, // {filter, state: "loading"|"done"|"stopped", count}
  page: 0,
  pageSize: 25,
  chartBy: "channel",
  selected: null, // seq of the event shown in detail
  exportFile: null, // {url, name, count, bytes, seqs, links, sha}
  exportState: "",
  chain: null, // the last VerifyChainResponse, with when
  incidents: null, // {items, next, state}
  loans: null, // {items, state}
  busy: false,
  epoch: 0, // bumps when the screen is cleared: answers to earlier calls are dropped
  loader: null,
};

// ---------------------------------------------------------------------------------------------
// Messages and errors

function showMessage(kind, key, params = {}) {
  state.message = { kind, key, params };
  renderMessage();
}

function clearMessage() {
  state.message = null;
  renderMessage();
}

function renderMessage() {
  const err = $("error");
  const notice = $("notice");
  err.hidden = notice.hidden = true;
  err.textContent = notice.textContent = "";
  const m = state.message;
  if (!m) return;
  const box = m.kind === "error" ? err : notice;
  box.textContent = t(m.key, localParams(m.params));
  box.hidden = false;
  box.dataset.key = m.key;
}

function localParams(params) {
  const out = {};
  for (const [k, v] of Object.entries(params || {})) {
    if (v && typeof v === "object" && "wait" in v) out[k] = formatWait(v.wait);
    else if (v && typeof v === "object" && "key" in v) out[k] = t(v.key, localParams(v.params));
    else if (v && typeof v === "object" && "list" in v) out[k] = v.list.map((x) => localParams({ x }).x).join("；");
    else out[k] = v;
  }
  return out;
}

function setFieldError(field, key, params) {
  state.fieldErrors[field] = { key, params };
  renderFieldErrors();
}

function clearFieldErrors() {
  state.fieldErrors = {};
  renderFieldErrors();
}

function renderFieldErrors() {
  for (const [field, ids] of Object.entries(FIELDS)) {
    const e = state.fieldErrors[field];
    const el = $(ids.error);
    if (!el) continue;
    // At the field its label is already shown: only what is wrong with it.
    el.textContent = e ? (e.params && e.params.hint ? localParams({ h: e.params.hint }).h : t(e.key, localParams(e.params))) : "";
    el.hidden = !e;
    const input = $(ids.input);
    if (input) {
      if (e) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
  }
}

/** Every API error, in plain words; never more than the API said. `where`: which call. */
function explain(err, where) {
  if (err && err.name === "AbortError") return;
  if (!(err instanceof ApiError)) {
    console.warn("unexpected", err); // eslint-disable-line no-console
    showMessage("error", "errInternal");
    return;
  }
  const retry = err.retrySeconds != null ? { wait: err.retrySeconds } : null;
  const reason = (err.reason || "").toUpperCase();
  switch (err.code) {
    case "invalid_argument": {
      if (reason === "TRIVIAL_PASSWORD") {
        setFieldError("new_password", "fieldBad", { label: { key: "newPassword" }, hint: { key: "errTrivialPassword" } });
        showMessage("error", "errTrivialPassword");
        return;
      }
      const named = [];
      for (const v of err.violations) {
        const f = FIELDS[v.field] || FIELDS[v.field.split(".").pop()];
        if (f) {
          const hint = v.field === "filter.end_time" && /before/.test(v.description) ? "hint_end_before"
            : /required/.test(v.description) ? "hint_required" : f.hint;
          setFieldError(FIELDS[v.field] ? v.field : v.field.split(".").pop(), "fieldBad",
            { label: { key: f.label }, hint: { key: hint } });
          named.push({ key: "fieldBad", params: { label: { key: f.label }, hint: { key: hint } } });
        }
      }
      if (named.length) showMessage("error", "errInvalid", { what: { list: named } });
      else showMessage("error", "errInvalidPlain");
      return;
    }
    case "unauthenticated":
      if (where === "sign-in" || where === "change") {
        showMessage("error", "errBadCredentials");
      } else {
        clearAll();
        showView("sign-in");
        showMessage("error", "errSignInFirst");
      }
      return;
    case "resource_exhausted":
      if (reason.startsWith("STAFF_LOCKED")) showMessage("error", retry ? "errStaffLocked" : "errStaffLockedNoTime", { retry });
      else showMessage("error", retry ? "errThrottled" : "errThrottledNoTime", { retry });
      return;
    case "permission_denied": {
      const key = {
        WRONG_TERMINAL_FOR_ROLE: "errWrongTerminalForRole", ROLE: "errRole", WRONG_CHANNEL: "errWrongChannel",
        REVOKED_TERMINAL: "errRevoked", NO_IDENTITY: "errNoIdentity", CSRF: "errCsrf", ORIGIN_NOT_ALLOWED: "errCsrf",
      }[reason] || "errRole";
      showMessage("error", key);
      return;
    }
    case "failed_precondition":
      if (reason === "PASSWORD_EXPIRED") {
        $("c-staff-id").value = $("staff-id").value;
        showView("change");
        showMessage("error", "errPasswordExpired");
      } else {
        showMessage("error", "errPrecondition");
      }
      return;
    case "not_found":
      showMessage("error", "errNotFound");
      return;
    case "deadline_exceeded":
      showMessage("error", "errTimeout");
      return;
    case "unavailable":
      showMessage("error", err.network ? "errNetwork" : reason.startsWith("INTERRUPTED") ? "errInterrupted" : "errUnavailable");
      return;
    default:
      showMessage("error", "errInternal");
  }
}

// ---------------------------------------------------------------------------------------------
// Views

function showView(view) {
  state.view = view;
  for (const v of VIEWS) $(v === "sign-in" ? "step-sign-in" : v === "change" ? "step-change" : v).hidden = v !== view;
  document.body.dataset.view = view;
  $("sign-out").hidden = view !== "desk";
  renderWho();
  const focus = { "sign-in": "staff-id", change: "c-current" }[view];
  if (focus) $(focus).focus({ preventScroll: true });
}

function renderWho() {
  const who = $("who");
  who.hidden = !state.staff || state.view !== "desk";
  who.textContent = state.staff ? t("signedIn", { staff: state.staff.id, role: word("role", state.staff.role) }) : "";
}

function showTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll(".tabs [data-tab]")) {
    const on = b.dataset.tab === tab;
    b.setAttribute("aria-selected", on ? "true" : "false");
    $("panel-" + b.dataset.tab).hidden = !on;
  }
}

function setBusy(busy) {
  state.busy = busy;
  document.body.classList.toggle("busy", busy);
  for (const id of ["sign-in", "change", "run-query", "verify-new", "verify-all", "load-incidents", "load-loans"]) {
    $(id).disabled = busy;
  }
  $("export").disabled = busy || !state.query || state.query.state !== "done" || state.events.length === 0;
}

function clearAll() {
  state.epoch += 1;
  if (state.loader) state.loader.abort();
  state.loader = null;
  state.staff = null;
  state.events = [];
  state.query = null;
  state.page = 0;
  state.selected = null;
  if (state.exportFile) URL.revokeObjectURL(state.exportFile.url);
  state.exportFile = null;
  state.exportState = "";
  state.chain = null;
  state.incidents = null;
  state.loans = null;
  for (const f of ["form-sign-in", "form-change", "form-query"]) $(f).reset();
  $("l-hall").value = "";
  clearFieldErrors();
  setBusy(false);
  renderAll();
}

function renderAll() {
  applyStatic();
  fillSelects();
  renderMessage();
  renderFieldErrors();
  renderWho();
  renderTerminal();
  renderRefusal();
  renderQuery();
  renderExport();
  renderChain();
  renderIncidents();
  renderLoans();
}

function renderTerminal() {
  const c = state.config;
  const badge = $("terminal");
  badge.hidden = !c || !c.terminal;
  badge.textContent = c && c.terminal ? c.terminal : "";
}

function renderRefusal() {
  const c = state.config;
  if (!c || c.channel === "audit") return;
  $("refusal-text").textContent = c.terminal
    ? t("refusalText", { channel: word("channel", c.channel), terminal: c.terminal })
    : t("refusalNoCert");
}

function option(value, text, selected) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  o.selected = selected;
  return o;
}

function fillSelects() {
  for (const [id, prefix, values] of [["f-channel", "channel", CHANNELS], ["f-decision", "decision", DECISIONS],
    ["i-state", "state", INCIDENT_STATES]]) {
    const sel = $(id);
    const was = sel.value;
    sel.replaceChildren(option("", t("any"), !was), ...values.map((v) => option(v, word(prefix, v), v === was)));
  }
  const list = $("methods");
  if (!list.children.length) {
    list.append(...FULL_METHODS.map((m) => {
      const o = document.createElement("option");
      o.value = m.split("/").pop();
      o.textContent = m;
      return o;
    }));
  }
}

// ---------------------------------------------------------------------------------------------
// Sign-in, password change, sign-out

async function signIn(event) {
  event.preventDefault();
  if (state.busy) return;
  clearMessage();
  clearFieldErrors();
  setBusy(true);
  const epoch = state.epoch;
  const staffId = $("staff-id").value.trim();
  try {
    const answer = await unary(STAFF + "SignIn", {
      staffId, password: $("password").value, totpCode: digits($("totp").value),
    });
    if (epoch !== state.epoch) return;
    state.staff = { id: staffId, role: answer.role || "" };
    $("form-sign-in").reset();
    showView("desk");
    showTab("query");
    $("f-msisdn").focus({ preventScroll: true });
  } catch (err) {
    if (epoch === state.epoch) explain(err, "sign-in");
  } finally {
    setBusy(false);
  }
}

async function changePassword(event) {
  event.preventDefault();
  if (state.busy) return;
  clearMessage();
  clearFieldErrors();
  if ($("c-new").value !== $("c-new2").value) {
    setFieldError("new_password2", "fieldBad", { label: { key: "newPasswordAgain" }, hint: { key: "passwordsDiffer" } });
    return;
  }
  setBusy(true);
  try {
    await unary(STAFF + "ChangePassword", {
      staffId: $("c-staff-id").value.trim(), currentPassword: $("c-current").value, newPassword: $("c-new").value,
      totpCode: digits($("c-totp").value),
    });
    $("staff-id").value = $("c-staff-id").value.trim();
    $("form-change").reset();
    showView("sign-in");
    $("password").focus();
    showMessage("notice", "passwordChanged");
  } catch (err) {
    explain(err, "change");
  } finally {
    setBusy(false);
  }
}

async function signOut() {
  clearAll();
  showView("sign-in");
  showMessage("notice", "signedOut");
  try {
    await unary(STAFF + "SignOut", {}, { keepalive: true });
  } catch {
    // The screen is already cleared; a session that had already ended is what was wanted anyway.
  }
}

function digits(value) {
  return value.replace(/[０-９]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0)).replace(/[\s-]/g, "");
}

// ---------------------------------------------------------------------------------------------
// The query

/** The filter as the form says (the server judges every field: what it refuses is shown at the field). */
function filterFromForm() {
  const f = {};
  const text = { msisdn: digits($("f-msisdn").value), staffId: $("f-staff").value.trim(),
    terminal: $("f-terminal").value.trim(), hall: $("f-hall").value.trim(), channel: $("f-channel").value,
    decision: $("f-decision").value, method: fullMethod($("f-method").value) };
  for (const [k, v] of Object.entries(text)) if (v) f[k] = v;
  for (const [k, id] of [["startTime", "f-start"], ["endTime", "f-end"]]) {
    const v = $(id).value;
    if (!v) continue;
    const d = new Date(v); // datetime-local: the browser's local time
    if (Number.isNaN(d.getTime())) {
      setFieldError("filter." + (k === "startTime" ? "start_time" : "end_time"), "fieldBad",
        { label: { key: k === "startTime" ? "fStart" : "fEnd" }, hint: { key: "hint_time" } });
      return null;
    }
    f[k] = d.toISOString();
  }
  return f;
}

/** ListCallDetails, KioskService/ListCallDetails or the full path: the full path the trail records. */
function fullMethod(name) {
  const bare = name.trim().replace(/^\//, "").replace(/^hallgate\.v1\./, "");
  if (!bare) return "";
  const found = FULL_METHODS.filter((m) => m.endsWith("/" + bare) || m.endsWith("." + bare));
  return found.length === 1 ? found[0] : name.trim();
}

async function runQuery(event) {
  if (event) event.preventDefault();
  if (state.busy) return;
  clearMessage();
  clearFieldErrors();
  const filter = filterFromForm();
  if (!filter) return;
  if (state.loader) state.loader.abort();
  const loader = new AbortController();
  state.loader = loader;
  state.events = [];
  state.page = 0;
  state.selected = null;
  state.query = { filter, state: "loading", count: 0 };
  dropExport();
  setBusy(true);
  renderQuery();
  const epoch = state.epoch;
  let lastPaint = 0;
  try {
    for await (const message of stream(AUDIT + "QueryEvents", { filter }, { signal: loader.signal })) {
      if (epoch !== state.epoch) return;
      if (message.event) state.events.push(normalise(message.event));
      state.query.count = state.events.length;
      if (Date.now() - lastPaint > 200) {
        lastPaint = Date.now();
        renderQueryStatus();
      }
    }
    if (epoch !== state.epoch) return;
    state.query.state = "done";
  } catch (err) {
    if (epoch !== state.epoch) return;
    state.query.state = state.events.length ? "stopped" : "failed";
    if (!state.events.length) state.query = null;
    explain(err, "query");
  } finally {
    if (state.loader === loader) state.loader = null;
    if (epoch === state.epoch) {
      setBusy(false);
      renderQuery();
    }
  }
}

function normalise(e) {
  return { seq: Number(e.seq || 0), id: e.id || "", fields: e.fields || {} };
}

function clearQuery() {
  $("form-query").reset();
  clearFieldErrors();
  clearMessage();
}

function renderQueryStatus() {
  const s = $("query-status");
  const q = state.query;
  s.textContent = "";
  delete s.dataset.state;
  if (!q) return;
  const count = formatCount(q.count);
  s.textContent = q.state === "loading" ? t("querying", { count })
    : q.state === "stopped" ? t("queryStopped", { count })
      : q.count === 0 ? t("queryEmpty") : t("queryDone", { count });
  s.dataset.state = q.state;
  s.dataset.count = String(q.count);
}

function renderQuery() {
  renderQueryStatus();
  const q = state.query;
  $("results").hidden = !q || state.events.length === 0;
  $("export").disabled = state.busy || !q || q.state !== "done" || state.events.length === 0;
  if (!q || state.events.length === 0) {
    $("events-body").replaceChildren();
    $("chart").replaceChildren();
    $("detail").hidden = true;
    return;
  }
  renderChart();
  renderPage();
  renderDetail();
}

function renderChart() {
  const by = state.chartBy;
  for (const b of document.querySelectorAll(".seg-btn")) b.setAttribute("aria-pressed", b.dataset.by === by ? "true" : "false");
  const data = bucket(state.events.map((e) => [dayOf(e.fields.at), e.fields[by] || "unknown"]));
  const host = $("chart");
  const title = t("chartLabel", { by: t(by === "channel" ? "colChannel" : "colDecision") })
    + (data.capped ? t("chartCapped", { days: MAX_DAYS }) : "");
  drawChart(host, data, { label: (s) => word(by, s), title, order: by === "channel" ? CHANNELS : DECISIONS });
  host.dataset.by = by;
  host.dataset.days = String(data.days.length);
}

function pages() {
  return Math.max(1, Math.ceil(state.events.length / state.pageSize));
}

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderPage() {
  const n = state.events.length;
  state.page = Math.min(Math.max(0, state.page), pages() - 1);
  const from = state.page * state.pageSize;
  const rows = state.events.slice(from, from + state.pageSize).map((e) => {
    const f = e.fields;
    const tr = document.createElement("tr");
    tr.dataset.seq = String(e.seq);
    tr.tabIndex = 0;
    if (f.decision && f.decision !== "allowed") tr.classList.add("d-" + f.decision);
    if (state.selected === e.seq) tr.classList.add("selected");
    const time = document.createElement("td");
    const tm = document.createElement("time");
    tm.dateTime = f.at || "";
    tm.textContent = formatDateTime(f.at);
    time.append(tm);
    const who = [f.staff_id, f.role ? word("role", f.role) : ""].filter(Boolean).join(" · ");
    const method = (f.method || "").split("/").pop() + (f.phase ? ` (${f.phase})` : "");
    tr.append(cell(String(e.seq), "num"), time, cell(word("channel", f.channel || "")), cell(f.terminal || "—"),
      cell(who || "—"), cell(method), cell(f.subscriber || "—"), cell(word("decision", f.decision || ""), "decision"),
      cell(f.reason || ""));
    return tr;
  });
  $("events-body").replaceChildren(...rows);
  const label = $("page-label");
  label.textContent = t("pageLabel", { page: state.page + 1, pages: pages(), from: formatCount(from + 1),
    to: formatCount(Math.min(n, from + state.pageSize)), count: formatCount(n) });
  label.dataset.page = String(state.page + 1);
  label.dataset.pages = String(pages());
  $("page-first").disabled = $("page-prev").disabled = state.page === 0;
  $("page-next").disabled = $("page-last").disabled = state.page >= pages() - 1;
}

function goPage(p) {
  state.page = p;
  renderPage();
}

function selectRow(target) {
  const tr = target.closest("tr[data-seq]");
  if (!tr) return;
  const seq = Number(tr.dataset.seq);
  state.selected = state.selected === seq ? null : seq;
  renderPage();
  renderDetail();
}

function renderDetail() {
  const box = $("detail");
  const e = state.events.find((x) => x.seq === state.selected);
  box.hidden = !e;
  if (!e) return;
  $("detail-title").textContent = t("detailTitle", { seq: e.seq });
  const list = $("detail-fields");
  list.replaceChildren();
  for (const [k, v] of [["id", e.id], ...Object.entries(e.fields).sort(([a], [b]) => a.localeCompare(b))]) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    list.append(dt, dd);
  }
}

// ---------------------------------------------------------------------------------------------
// Export: the same filter, as a JSON Lines file the browser saves; checked here as far as a page
// can (links between consecutive events, the file's SHA-256); the seals are checked with the key.

function dropExport() {
  if (state.exportFile) URL.revokeObjectURL(state.exportFile.url);
  state.exportFile = null;
  state.exportState = "";
  renderExport();
}

async function exportEvents() {
  if (state.busy || !state.query || state.query.state !== "done") return;
  clearMessage();
  dropExport();
  state.exportState = "loading";
  state.exportBytes = 0;
  setBusy(true);
  renderExport();
  const epoch = state.epoch;
  const chunks = [];
  try {
    for await (const message of stream(AUDIT + "ExportEvents", { filter: state.query.filter })) {
      if (epoch !== state.epoch) return;
      const bytes = base64Bytes(message.jsonl || "");
      chunks.push(bytes);
      state.exportBytes += bytes.length;
      renderExport();
    }
    if (epoch !== state.epoch) return;
    const blob = new Blob(chunks, { type: "application/x-ndjson" });
    const facts = await examine(blob);
    if (epoch !== state.epoch) return;
    if (facts.count === 0) {
      state.exportState = "empty";
    } else {
      const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "Z");
      state.exportFile = { url: URL.createObjectURL(blob), name: `audit-export-${stamp}.jsonl`, bytes: blob.size, ...facts };
      state.exportState = "done";
    }
  } catch (err) {
    if (epoch !== state.epoch) return;
    state.exportState = "stopped";
    explain(err, "export");
  } finally {
    if (epoch === state.epoch) {
      setBusy(false);
      renderExport();
    }
  }
}

async function examine(blob) {
  const text = await blob.text();
  const lines = text.split("\n").filter((l) => l);
  let pairs = 0;
  let ok = 0;
  let badSeq = null;
  let prev = null;
  let first = null;
  let last = null;
  for (const line of lines) {
    const r = JSON.parse(line);
    const seq = Number(r.seq);
    if (first === null) first = seq;
    last = seq;
    if (prev && seq === prev.seq + 1) {
      pairs += 1;
      if (r.prev === prev.mac) ok += 1;
      else if (badSeq === null) badSeq = seq;
    }
    prev = { seq, mac: r.mac };
  }
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  const sha = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return { count: lines.length, first, last, pairs, ok, badSeq, sha };
}

function fact(list, key, value, attrs = {}) {
  const dt = document.createElement("dt");
  dt.textContent = t(key);
  const dd = document.createElement("dd");
  dd.textContent = value;
  for (const [k, v] of Object.entries(attrs)) dd.dataset[k] = v;
  list.append(dt, dd);
}

function renderExport() {
  const box = $("export-box");
  box.hidden = !state.exportState;
  const status = $("export-status");
  const f = state.exportFile;
  status.dataset.state = state.exportState;
  status.textContent = {
    loading: t("exporting", { bytes: formatBytes(state.exportBytes || 0) }),
    done: f ? t("exportDone", { count: formatCount(f.count), bytes: formatBytes(f.bytes) }) : "",
    stopped: t("exportStopped"),
    empty: t("exportEmpty"),
  }[state.exportState] || "";
  const list = $("export-facts");
  list.replaceChildren();
  const link = $("export-link");
  link.hidden = !f;
  if (!f) {
    link.removeAttribute("href");
    return;
  }
  link.href = f.url;
  link.download = f.name;
  fact(list, "factFile", f.name);
  fact(list, "factEvents", formatCount(f.count), { count: String(f.count) });
  fact(list, "factSeqs", `${f.first} – ${f.last}`);
  fact(list, "factLinks", f.badSeq !== null ? t("factLinksBad", { seq: f.badSeq })
    : t("factLinksValue", { ok: f.ok, pairs: f.pairs }));
  fact(list, "factSha", f.sha, { sha: f.sha });
}

// ---------------------------------------------------------------------------------------------
// Chain status

async function verify(whole) {
  if (state.busy) return;
  clearMessage();
  setBusy(true);
  state.chain = { loading: true };
  renderChain();
  const epoch = state.epoch;
  try {
    const r = await unary(AUDIT + "VerifyChain", whole ? { startSeq: 1 } : {});
    if (epoch !== state.epoch) return;
    state.chain = { ...r, whole, at: new Date().toISOString() };
  } catch (err) {
    if (epoch !== state.epoch) return;
    state.chain = null;
    explain(err, "verify");
  } finally {
    if (epoch === state.epoch) {
      setBusy(false);
      renderChain();
    }
  }
}

function renderChain() {
  const c = state.chain;
  const status = $("chain-status");
  status.textContent = c && c.loading ? t("verifying") : "";
  const box = $("chain-result");
  box.hidden = !c || c.loading;
  if (!c || c.loading) return;
  const ok = Boolean(c.ok);
  const bad = Number(c.firstBadSeq || 0);
  box.dataset.ok = ok ? "true" : "false";
  box.classList.toggle("broken", !ok);
  const verdict = $("chain-verdict");
  verdict.textContent = ok ? t("chainOk") : t("chainBroken", { seq: bad });
  verdict.dataset.badSeq = ok ? "" : String(bad);
  const list = $("chain-facts");
  list.replaceChildren();
  const from = c.verifiedFrom || "";
  const fromKey = c.whole ? "fromWhole" : "from" + from.charAt(0).toUpperCase() + from.slice(1);
  fact(list, "factChecked", formatCount(Number(c.checked || 0)), { checked: String(Number(c.checked || 0)) });
  fact(list, "factFrom", from ? t(fromKey) : "—", { from });
  // The positions the server reports (VerifyChainResponse); "—" where it has none.
  const seq = (v) => (Number(v || 0) > 0 ? String(Number(v)) : "—");
  fact(list, "factStartedAfter", seq(c.startedAfterSeq), { startedAfter: seq(c.startedAfterSeq) });
  fact(list, "factLastChecked", seq(c.lastCheckedSeq), { lastChecked: seq(c.lastCheckedSeq) });
  fact(list, "factCheckpoint", seq(c.checkpointSeq), { checkpoint: seq(c.checkpointSeq) });
  if (ok) fact(list, "factVerifiedThrough", seq(c.verifiedThroughSeq), { verifiedThrough: seq(c.verifiedThroughSeq) });
  if (!ok) {
    fact(list, "factFirstBad", String(bad), { seq: String(bad) });
    if (c.firstBadId) fact(list, "factFirstBadId", c.firstBadId);
    fact(list, "factWhy", c.reason ? word("why", c.reason) : "—", { reason: c.reason || "" });
  }
  fact(list, "factVerifiedAt", formatDateTime(c.at));
  const warn = $("chain-warning");
  warn.hidden = !c.verifiedPositionRejected;
  warn.textContent = c.verifiedPositionRejected ? t("positionRejected", { why: c.verifiedPositionRejected }) : "";
  $("show-break").hidden = ok || !c.firstBadId;
}

/** The events around the break: a query of the minutes around the broken event's stream time. */
function showBreak() {
  const c = state.chain;
  if (!c || !c.firstBadId) return;
  const ms = Number(String(c.firstBadId).split("-")[0]);
  if (!Number.isFinite(ms)) return;
  clearQuery();
  $("f-start").value = localInput(new Date(ms - 60_000));
  $("f-end").value = localInput(new Date(ms + 60_000));
  state.selected = Number(c.firstBadSeq);
  showTab("query");
  const want = Number(c.firstBadSeq);
  runQuery().then(() => {
    const i = state.events.findIndex((e) => e.seq === want);
    if (i >= 0) {
      state.selected = want;
      goPage(Math.floor(i / state.pageSize));
      renderDetail();
    }
  });
}

function localInput(d) {
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// ---------------------------------------------------------------------------------------------
// Incidents (auditors read them)

async function loadIncidents(more = false) {
  if (state.busy) return;
  clearMessage();
  const prev = more && state.incidents ? state.incidents : { items: [], next: "" };
  state.incidents = { ...prev, state: "loading" };
  setBusy(true);
  renderIncidents();
  const epoch = state.epoch;
  try {
    const request = { pageSize: 50, overdueOnly: $("i-overdue").checked };
    if ($("i-state").value) request.state = "INCIDENT_STATE_" + $("i-state").value;
    if (more && prev.next) request.pageToken = prev.next;
    const r = await unary(INCIDENT + "ListIncidents", request);
    if (epoch !== state.epoch) return;
    state.incidents = { items: [...prev.items, ...(r.incidents || [])], next: r.nextPageToken || "", state: "done" };
  } catch (err) {
    if (epoch !== state.epoch) return;
    state.incidents = null;
    explain(err, "incidents");
  } finally {
    if (epoch === state.epoch) {
      setBusy(false);
      renderIncidents();
    }
  }
}

function enumWord(prefix, value, strip) {
  return word(prefix, String(value || "").replace(strip, ""));
}

function renderIncidents() {
  const inc = state.incidents;
  const status = $("incidents-status");
  status.textContent = !inc ? "" : inc.state === "loading" ? t("incidentsLoading")
    : inc.items.length ? t("incidentsDone", { count: formatCount(inc.items.length) }) : t("incidentsEmpty");
  status.dataset.state = inc ? inc.state : "";
  const table = $("incidents");
  table.hidden = !inc || inc.items.length === 0;
  $("incidents-more").hidden = !inc || !inc.next;
  const rows = (inc ? inc.items : []).map((i) => {
    const tr = document.createElement("tr");
    tr.dataset.id = i.incidentId || "";
    const s = i.suspect || {};
    const suspect = s.id ? `${enumWord("actor", s.kind, "ACTOR_KIND_")} ${s.id}` : "—";
    const window = s.start || s.end ? ` (${formatDateTime(s.start)} – ${formatDateTime(s.end)})` : "";
    const d = i.deadlines || {};
    const deadlines = [];
    if (d.lawEnforcementDue) deadlines.push(t("leDue", { when: formatDateTime(d.lawEnforcementDue) })
      + (d.lawEnforcementOverdue ? ` · ${t("overdue")}` : ""));
    if (d.customersFrom) deadlines.push(t("custFrom", { when: formatDateTime(d.customersFrom) })
      + (d.customersOverdue ? ` · ${t("overdue")}` : ""));
    if (d.lawEnforcementOverdue || d.customersOverdue) tr.classList.add("overdue");
    tr.append(cell(i.incidentId || ""), cell(enumWord("state", i.state, "INCIDENT_STATE_")), cell(i.summary || "", "wrap"),
      cell(suspect + window, "wrap"),
      cell(t("reportedBy", { who: i.reportedBy || "", role: word("role", i.reporterRole || ""),
        when: formatDateTime(i.reportedAt) }), "wrap"),
      cell(deadlines.join("；") || "—", "wrap"));
    return tr;
  });
  $("incidents-body").replaceChildren(...rows);
}

// ---------------------------------------------------------------------------------------------
// Archive loans: the register itself is the hall's (ListLoans is refused on the audit channel);
// the trail holds every loan call, so the desk lists those.

async function loadLoans() {
  if (state.busy) return;
  clearMessage();
  clearFieldErrors();
  state.loans = { items: [], state: "loading" };
  setBusy(true);
  renderLoans();
  const epoch = state.epoch;
  const since = new Date(Date.now() - Number($("l-days").value) * 86400_000).toISOString();
  const hall = $("l-hall").value.trim();
  try {
    const found = [];
    for (const method of LENDING) {
      const filter = { method, startTime: since };
      if (hall) filter.hall = hall;
      for await (const message of stream(AUDIT + "QueryEvents", { filter })) {
        if (epoch !== state.epoch) return;
        if (message.event) found.push(normalise(message.event));
      }
    }
    if (epoch !== state.epoch) return;
    found.sort((a, b) => a.seq - b.seq);
    state.loans = { items: found, state: "done" };
  } catch (err) {
    if (epoch !== state.epoch) return;
    state.loans = null;
    explain(err, "loans");
  } finally {
    if (epoch === state.epoch) {
      setBusy(false);
      renderLoans();
    }
  }
}

function renderLoans() {
  const l = state.loans;
  const status = $("loans-status");
  status.textContent = !l ? "" : l.state === "loading" ? t("loansLoading")
    : l.items.length ? t("loansDone", { count: formatCount(l.items.length) }) : t("loansEmpty");
  status.dataset.state = l ? l.state : "";
  $("loans").hidden = !l || l.items.length === 0;
  const rows = (l ? l.items : []).map((e) => {
    const f = e.fields;
    let detail = {};
    try {
      detail = f.detail ? JSON.parse(f.detail) : {};
    } catch {
      detail = {};
    }
    const tr = document.createElement("tr");
    tr.dataset.seq = String(e.seq);
    if (f.decision && f.decision !== "allowed") tr.classList.add("d-" + f.decision);
    const who = [f.staff_id, f.role ? word("role", f.role) : ""].filter(Boolean).join(" · ");
    tr.append(cell(String(e.seq), "num"), cell(formatDateTime(f.at)), cell(f.hall || "—"), cell(who || "—"),
      cell((f.method || "").split("/").pop()), cell(detail.loan_id || "—"), cell(detail.archive_id || "—"),
      cell(word("decision", f.decision || ""), "decision"));
    return tr;
  });
  $("loans-body").replaceChildren(...rows);
}

// ---------------------------------------------------------------------------------------------
// Start

async function start() {
  setLang("zh-CN");
  applyStatic();
  fillSelects();
  $("lang").addEventListener("click", () => {
    setLang(currentLang() === "en" ? "zh-CN" : "en");
    renderAll();
  });
  $("form-sign-in").addEventListener("submit", signIn);
  $("form-change").addEventListener("submit", changePassword);
  $("show-change").addEventListener("click", () => {
    clearMessage();
    $("c-staff-id").value = $("staff-id").value;
    showView("change");
  });
  $("back-to-sign-in").addEventListener("click", () => {
    clearMessage();
    clearFieldErrors();
    showView("sign-in");
  });
  $("sign-out").addEventListener("click", signOut);
  for (const b of document.querySelectorAll(".tabs [data-tab]")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("form-query").addEventListener("submit", runQuery);
  $("clear-query").addEventListener("click", clearQuery);
  $("export").addEventListener("click", exportEvents);
  for (const b of document.querySelectorAll(".seg-btn")) {
    b.addEventListener("click", () => {
      state.chartBy = b.dataset.by;
      renderChart();
    });
  }
  $("page-first").addEventListener("click", () => goPage(0));
  $("page-prev").addEventListener("click", () => goPage(state.page - 1));
  $("page-next").addEventListener("click", () => goPage(state.page + 1));
  $("page-last").addEventListener("click", () => goPage(pages() - 1));
  $("page-size").addEventListener("change", () => {
    const first = state.page * state.pageSize;
    state.pageSize = Number($("page-size").value);
    goPage(Math.floor(first / state.pageSize));
  });
  $("events-body").addEventListener("click", (e) => selectRow(e.target));
  $("events-body").addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      selectRow(e.target);
    }
  });
  $("verify-new").addEventListener("click", () => verify(false));
  $("verify-all").addEventListener("click", () => verify(true));
  $("show-break").addEventListener("click", showBreak);
  $("load-incidents").addEventListener("click", () => loadIncidents(false));
  $("incidents-more").addEventListener("click", () => loadIncidents(true));
  $("load-loans").addEventListener("click", loadLoans);
  window.addEventListener("pagehide", () => {
    if (state.staff) unary(STAFF + "SignOut", {}, { keepalive: true }).catch(() => {});
  });

  try {
    state.config = await pageConfig();
  } catch (err) {
    state.config = { channel: "unknown", terminal: "" };
    explain(err, "config");
  }
  const c = state.config;
  document.body.dataset.channel = c.channel || "unknown";
  document.body.classList.toggle("kiosk", window.innerWidth >= 1000 && window.innerHeight > window.innerWidth);
  renderTerminal();
  if (c.channel !== "audit") {
    renderRefusal();
    showView("refusal");
  } else {
    showView("sign-in");
  }
  document.body.dataset.ready = "true";
}

start();
