// The self-service page: number → code by SMS → service password + code → month → call list →
// sign out. The session lives in an HttpOnly cookie the page never sees; customer data lives only
// in the DOM and in this module's memory, and every way out (sign-out, idle, expiry) clears both.

import { ApiError, pageConfig, setChallenge, stream, unary } from "./api.js";
import {
  applyStatic, currentLang, formatBytes, historyWhat, tOr, formatCount, formatDateTime, formatDuration, formatFen, formatMonth,
  formatTime, formatWait, setLang, t,
} from "./i18n.js";
import { VirtualList } from "./records.js";

const $ = (id) => document.getElementById(id);
const FIELDS = {
  msisdn: { input: "msisdn", error: "msisdn-error" },
  service_password: { input: "password", error: "service_password-error" },
  one_time_code: { input: "code", error: "one_time_code-error" },
  month: { input: null, error: "month-error" },
};
const HISTORY_MAX = 1000;

const state = {
  config: { channel: "web", idleTimeoutSeconds: 120, retentionMonths: 6, today: "", challenge: "none" },
  step: "number",
  msisdn: "",
  signedIn: false,
  busy: false,
  message: null, // {kind: "error"|"notice", key, params}
  fieldErrors: {}, // field → {key, params}
  codeSent: null, // {msisdn, valid}
  resendAt: 0,
  month: "",
  calls: null, // {month, count, state: "loading"|"done"|"stopped"}
  history: null, // {state, count}
  loader: null, // AbortController of the stream in progress
  lastInput: Date.now(),
  epoch: 0, // bumps whenever the screen is cleared: an answer to a call made before is dropped
};

// ---------------------------------------------------------------------------------------------
// Messages

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
  const el = m.kind === "error" ? err : notice;
  el.textContent = t(m.key, localParams(m.params));
  el.hidden = false;
}

/** Parameters that are themselves localized ({retry: {wait: 900}} → "15 分钟"). */
function localParams(params) {
  const out = {};
  for (const [k, v] of Object.entries(params || {})) {
    if (v && typeof v === "object" && "wait" in v) out[k] = formatWait(v.wait);
    else if (v && typeof v === "object" && "month" in v) out[k] = formatMonth(v.month);
    else if (v && typeof v === "object" && "count" in v) out[k] = formatCount(v.count);
    else if (v && typeof v === "object" && "key" in v) out[k] = t(v.key, localParams(v.params));
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
    let el = $(ids.error);
    if (field === "msisdn" && state.step === "proof") {
      el.hidden = true;
      el = $("proof-msisdn-error");
    } else if (field === "msisdn") {
      $("proof-msisdn-error").hidden = true;
    }
    el.textContent = e ? t(e.key, localParams(e.params)) : "";
    el.hidden = !e;
    if (ids.input) {
      const input = $(ids.input);
      if (e) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Errors: one place maps every API error to what the customer is told. Never more than the API
// said: a wrong password and a wrong code are the same message.

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
      let shown = false;
      for (const v of err.violations) {
        const field = v.field.split(".").pop();
        if (FIELDS[field]) {
          const hint = field === "month" ? { key: "hint_month", params: { months: state.config.retentionMonths } }
            : { key: "hint_" + field };
          setFieldError(field, "fieldBad", { label: { key: "field_" + field }, hint });
          shown = true;
        }
      }
      if (shown) clearMessage();
      else showMessage("error", "errInvalid");
      return;
    }
    case "unauthenticated":
      if (where === "authenticate") {
        showMessage("error", "errWrongCredentials");
      } else {
        clearAll();
        showStep("number");
        showMessage("error", "errSessionExpired");
      }
      return;
    case "resource_exhausted":
      if (reason.startsWith("LOCKED")) showMessage("error", retry ? "errLocked" : "errLockedNoTime", { retry });
      else showMessage("error", retry ? "errThrottled" : "errThrottledNoTime", { retry });
      return;
    case "permission_denied":
      if (reason === "CHALLENGE_FAILED") showMessage("error", "errChallenge");
      else if (reason === "CSRF" || reason === "ORIGIN_NOT_ALLOWED") showMessage("error", "errCsrf");
      else showMessage("error", "errPermission");
      return;
    case "failed_precondition":
      showMessage("error", "errPrecondition");
      return;
    case "deadline_exceeded":
      showMessage("error", "errTimeout");
      return;
    case "unavailable":
      showMessage("error", err.network ? "errNetwork" : "errUnavailable");
      return;
    default:
      showMessage("error", "errInternal");
  }
}

// ---------------------------------------------------------------------------------------------
// Steps

function showStep(step) {
  state.step = step;
  for (const s of ["number", "proof", "calls", "history"]) $("step-" + s).hidden = s !== step;
  renderFieldErrors();
  const focus = { number: "msisdn", proof: "password" }[step];
  if (focus) $(focus).focus({ preventScroll: true });
}

function setBusy(busy) {
  state.busy = busy;
  for (const id of ["send-code", "sign-in", "resend"]) $(id).disabled = busy || (id === "resend" && resendLeft() > 0);
  document.body.classList.toggle("busy", busy);
}

function digits(value) {
  // Full-width digits (from some input methods) as ASCII; spaces and dashes dropped. Nothing
  // else is changed: the server judges what it gets.
  return value.replace(/[０-９]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0)).replace(/[\s-]/g, "");
}

// ---------------------------------------------------------------------------------------------
// The website's bot challenge: a vendor's widget in each form (page-config's challengeScript, given
// to the website only), whose one-use token goes with that form's call and is spent by it. In
// development the token is "dev". The page does not wait for the vendor: until its widget is
// solved, a call goes without a token and is refused in plain words.

const widgets = {}; // form id -> { id, token }
const CHALLENGE_LOAD_MS = 15000;

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    const timer = setTimeout(() => reject(new Error("the bot challenge's script did not load in time")),
      CHALLENGE_LOAD_MS);
    script.src = src;
    script.async = true;
    script.onload = () => { clearTimeout(timer); resolve(); };
    script.onerror = () => { clearTimeout(timer); reject(new Error("the bot challenge's script did not load")); };
    document.head.append(script);
  });
}

async function startChallenge() {
  const c = state.config;
  setChallenge(c.challenge === "dev" ? "dev" : "");
  if (c.channel !== "web" || !c.challengeScript || !c.challengeGlobal) return;
  await loadScript(c.challengeScript);
  const vendor = window[c.challengeGlobal];
  for (const form of ["form-number", "form-proof"]) {
    const box = $(form).querySelector(".challenge");
    const widget = { id: null, token: "" };
    const forget = () => { widget.token = ""; };
    box.hidden = false;
    widget.id = vendor.render(box, {
      sitekey: c.challengeSiteKey, callback: (token) => { widget.token = token; },
      "expired-callback": forget, "error-callback": forget,
    });
    widgets[form] = widget;
  }
}

/** The token of `form`'s widget for the next call (unchanged without a vendor). */
function challengeFor(form) {
  const widget = widgets[form];
  if (widget) setChallenge(widget.token);
}

/** The call went: its token is spent, the widget asks again. */
function challengeSpent(form) {
  const widget = widgets[form];
  if (!widget) return;
  widget.token = "";
  setChallenge("");
  try {
    window[state.config.challengeGlobal].reset(widget.id);
  } catch (err) {
    console.warn("the bot challenge's widget did not reset", err); // eslint-disable-line no-console
  }
}

async function requestCode(event) {
  if (event) event.preventDefault();
  if (state.busy) return;
  const msisdn = digits(state.step === "number" ? $("msisdn").value : state.msisdn);
  const form = state.step === "number" ? "form-number" : "form-proof";
  clearMessage();
  clearFieldErrors();
  setBusy(true);
  const epoch = state.epoch;
  challengeFor(form);
  try {
    const answer = await unary("RequestOneTimeCode", { msisdn });
    if (epoch !== state.epoch) return;
    state.msisdn = msisdn;
    state.codeSent = { msisdn, valid: seconds(answer.codeValidFor, 300) };
    state.resendAt = Date.now() + seconds(answer.resendAfter, 60) * 1000;
    renderCodeSent();
    showStep("proof");
  } catch (err) {
    if (epoch === state.epoch) explain(err, "code");
  } finally {
    challengeSpent(form);
    setBusy(false);
    renderResend();
  }
}

function renderCodeSent() {
  const c = state.codeSent;
  $("code-sent").textContent = c ? t("codeSent", { msisdn: c.msisdn, valid: formatWait(c.valid) }) : "";
}

function resendLeft() {
  return Math.max(0, Math.ceil((state.resendAt - Date.now()) / 1000));
}

function renderResend() {
  const left = resendLeft();
  const button = $("resend");
  button.textContent = left > 0 ? t("resendIn", { seconds: left }) : t("resend");
  button.disabled = state.busy || left > 0;
}

/** "300s" / "1.5s" (a protobuf Duration in JSON) → seconds. */
function seconds(duration, fallback) {
  const n = parseFloat(String(duration || ""));
  return Number.isFinite(n) ? n : fallback;
}

async function authenticate(event) {
  event.preventDefault();
  if (state.busy) return;
  clearMessage();
  clearFieldErrors();
  setBusy(true);
  const epoch = state.epoch;
  challengeFor("form-proof");
  try {
    await unary("Authenticate", {
      msisdn: state.msisdn, servicePassword: digits($("password").value), oneTimeCode: digits($("code").value),
    });
    if (epoch !== state.epoch) {
      // The screen was cleared (idle, sign-out) while this sign-in was on its way: it must not
      // come back to life on an empty screen. End the session it opened.
      await endSession();
      return;
    }
    state.signedIn = true;
    $("form-proof").reset();
    renderMonths();
    showStep("calls");
    $("months").querySelector("button")?.focus({ preventScroll: true });
  } catch (err) {
    if (epoch !== state.epoch) return;
    if (err instanceof ApiError && err.code !== "invalid_argument") $("form-proof").reset();
    explain(err, "authenticate");
  } finally {
    challengeSpent("form-proof");
    setBusy(false);
  }
}

// ---------------------------------------------------------------------------------------------
// Months and the call list

function monthsInWindow() {
  const [y, m] = (state.config.today || new Date().toISOString()).slice(0, 7).split("-").map(Number);
  const out = [];
  for (let i = 0; i < Math.max(1, state.config.retentionMonths); i++) {
    const d = new Date(Date.UTC(y, m - 1 - i, 1));
    out.push(`${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}`);
  }
  return out;
}

function renderMonths() {
  const box = $("months");
  box.replaceChildren();
  if (!state.signedIn) return;
  for (const month of monthsInWindow()) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "month";
    b.dataset.month = month;
    b.textContent = formatMonth(month);
    b.setAttribute("aria-pressed", String(month === state.month));
    box.appendChild(b);
  }
}

function createRow() {
  const row = document.createElement("div");
  row.className = "row";
  row.setAttribute("role", "listitem");
  const time = document.createElement("time");
  time.className = "c-time";
  row.appendChild(time);
  for (const c of ["c-kind", "c-dir", "c-party", "c-amount", "c-charge"]) {
    const span = document.createElement("span");
    span.className = c;
    row.appendChild(span);
  }
  return row;
}

const KINDS = { CALL_KIND_VOICE: "voice", CALL_KIND_SMS: "sms", CALL_KIND_DATA: "data" };
const DIRECTIONS = { CALL_DIRECTION_OUTGOING: "outgoing", CALL_DIRECTION_INCOMING: "incoming" };

function fillRow(row, r, i) {
  const [time, kind, dir, party, amount, charge] = row.children;
  time.dateTime = r.startTime || "";
  time.textContent = formatTime(r.startTime);
  const k = KINDS[r.kind] || "unknownKind";
  kind.textContent = t(k);
  row.dataset.kind = k;
  dir.textContent = DIRECTIONS[r.direction] ? t(DIRECTIONS[r.direction]) : "";
  party.textContent = r.otherParty || "—";
  amount.textContent = k === "data" ? formatBytes(r.volumeBytes) : k === "sms" ? "—" : formatDuration(r.durationSeconds);
  charge.textContent = formatFen(r.chargeFen);
  row.classList.toggle("odd", i % 2 === 1);
}

let list = null;

async function loadMonth(month) {
  if (!state.signedIn) return;
  if (state.loader) state.loader.abort();
  const loader = new AbortController();
  state.loader = loader;
  state.month = month;
  clearMessage();
  clearFieldErrors();
  list.clear();
  for (const b of $("months").querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset.month === month));
  state.calls = { month, count: 0, state: "loading" };
  $("calls").hidden = false;
  renderCallsStatus();
  let frame = 0;
  try {
    for await (const message of stream("ListCallDetails", { month }, { signal: loader.signal })) {
      if (state.loader !== loader) return;
      const records = message.records || [];
      list.append(records);
      state.calls.count = list.length;
      if (!frame) {
        frame = requestAnimationFrame(() => {
          frame = 0;
          renderCallsStatus();
        });
      }
    }
    if (state.loader !== loader) return;
    state.calls.state = "done";
  } catch (err) {
    if (state.loader !== loader) return;
    if (state.calls) state.calls.state = "stopped";
    explain(err, "calls");
  } finally {
    if (state.loader === loader) state.loader = null;
    if (frame) cancelAnimationFrame(frame);
    renderCallsStatus();
  }
}

function renderCallsStatus() {
  const status = $("calls-status");
  const c = state.calls;
  if (!c) {
    status.textContent = "";
    delete status.dataset.state;
    delete status.dataset.count;
    $("calls").hidden = true;
    return;
  }
  status.dataset.state = c.state;
  status.dataset.count = String(c.count);
  status.dataset.month = c.month;
  const key = c.state === "loading" ? "loading" : c.state === "stopped" ? (c.count ? "loadStopped" : "loadFailed")
    : c.count ? "loaded" : "empty";
  status.textContent = t(key, { month: formatMonth(c.month), count: formatCount(c.count) });
  $("calls").hidden = c.count === 0 && c.state !== "loading";
}

// ---------------------------------------------------------------------------------------------
// Access history (who looked at this number's data, when, where)

async function loadHistory() {
  if (!state.signedIn) return;
  if (state.loader) state.loader.abort();
  const loader = new AbortController();
  state.loader = loader;
  clearMessage();
  showStep("history");
  const ul = $("history-list");
  ul.replaceChildren();
  state.history = { state: "loading", count: 0 };
  renderHistoryStatus();
  try {
    for await (const message of stream("ListAccessHistory", {}, { signal: loader.signal })) {
      if (state.loader !== loader) return;
      const r = message.record;
      if (!r) continue;
      state.history.count++;
      if (state.history.count <= HISTORY_MAX) ul.appendChild(historyItem(r));
    }
    if (state.loader !== loader) return;
    state.history.state = "done";
  } catch (err) {
    if (state.loader !== loader) return;
    if (state.history) state.history.state = "stopped";
    explain(err, "history");
  } finally {
    if (state.loader === loader) state.loader = null;
    renderHistoryStatus();
  }
}

function historyItem(r) {
  const li = document.createElement("li");
  li.dataset.what = r.what || "";
  li.dataset.channel = r.channel || "";
  li.dataset.outcome = r.outcome || "";
  const time = document.createElement("time");
  time.dateTime = r.time || "";
  li.appendChild(time);
  for (const cls of ["h-where", "h-what", "h-purpose", "h-outcome"]) {
    const span = document.createElement("span");
    span.className = cls;
    li.appendChild(span);
  }
  const purpose = li.querySelector(".h-purpose");
  purpose.textContent = r.purpose || "";
  purpose.hidden = !r.purpose;
  li.dataset.hall = r.hall || "";
  fillHistoryItem(li);
  return li;
}

/** The texts of a history item, in the current language (again after a language switch). */
function fillHistoryItem(li) {
  const d = li.dataset;
  li.querySelector("time").textContent = formatDateTime(li.querySelector("time").dateTime);
  li.querySelector(".h-where").textContent =
    [d.hall, d.channel && tOr("channel:" + d.channel, d.channel)].filter(Boolean).join(" · ");
  li.querySelector(".h-what").textContent = historyWhat(d.what);
  li.querySelector(".h-outcome").textContent = d.outcome ? tOr("outcome:" + d.outcome, d.outcome) : "";
}

function renderHistoryStatus() {
  const status = $("history-status");
  const h = state.history;
  if (!h) {
    status.textContent = "";
    delete status.dataset.state;
    return;
  }
  status.dataset.state = h.state;
  status.dataset.count = String(h.count);
  status.textContent = h.state === "loading" ? t("historyLoading")
    : h.count ? t("historyLoaded", { count: formatCount(h.count) }) : t("historyEmpty");
}

// ---------------------------------------------------------------------------------------------
// Leaving: sign-out, idle, expiry. Everything the customer entered or was shown goes.

function clearAll() {
  state.epoch++;
  if (state.loader) state.loader.abort();
  state.loader = null;
  state.signedIn = false;
  state.msisdn = "";
  state.codeSent = null;
  state.resendAt = 0;
  state.month = "";
  state.calls = null;
  state.history = null;
  if (list) list.clear();
  $("form-number").reset();
  $("form-proof").reset();
  $("history-list").replaceChildren();
  $("months").replaceChildren();
  $("code-sent").textContent = "";
  clearFieldErrors();
  clearMessage();
  renderCallsStatus();
  renderHistoryStatus();
  renderResend();
  hideIdleWarning();
}

async function endSession(keepalive = false) {
  try {
    await unary("EndSession", {}, { keepalive });
  } catch {
    // The session is gone either way once the cookie is cleared or the token has expired;
    // the screen is cleared regardless.
  }
}

async function signOut() {
  const wasSignedIn = state.signedIn;
  clearAll();
  showStep("number");
  showMessage("notice", "signedOut");
  if (wasSignedIn) await endSession();
}

// ---------------------------------------------------------------------------------------------
// Idle: after idleTimeoutSeconds without input, clear the screen and end the session.

function hasCustomerState() {
  return state.signedIn || state.step !== "number" || state.message?.kind === "error" ||
    Object.keys(state.fieldErrors).length > 0 || $("msisdn").value !== "" || $("password").value !== "" ||
    $("code").value !== "";
}

function touched() {
  state.lastInput = Date.now();
  hideIdleWarning();
}

function hideIdleWarning() {
  $("idle-warning").hidden = true;
}

function idleTick() {
  renderResend();
  const limit = Number(state.config.idleTimeoutSeconds) || 0;
  if (limit <= 0 || !hasCustomerState()) {
    hideIdleWarning();
    return;
  }
  const left = limit - (Date.now() - state.lastInput) / 1000;
  if (left <= 0) {
    idleClear();
    return;
  }
  const warnAt = Math.min(30, limit / 2);
  if (left <= warnAt) {
    $("idle-text").textContent = t("idleWarning", { seconds: Math.ceil(left) });
    $("idle-warning").hidden = false;
  } else {
    hideIdleWarning();
  }
}

async function idleClear() {
  const wasSignedIn = state.signedIn;
  clearAll();
  showStep("number");
  showMessage("notice", "idleCleared");
  state.lastInput = Date.now();
  if (wasSignedIn) await endSession();
}

// ---------------------------------------------------------------------------------------------
// Language

function renderAll() {
  applyStatic();
  $("lang").textContent = t("switchLang");
  $("lang").lang = currentLang() === "en" ? "zh-CN" : "en";
  const channel = $("channel");
  channel.textContent = state.config.channel === "kiosk" ? t("channelKiosk") : t("channelWeb");
  channel.hidden = state.config.channel === "none";
  renderMessage();
  renderFieldErrors();
  renderCodeSent();
  renderResend();
  renderMonths();
  renderCallsStatus();
  renderHistoryStatus();
  for (const li of $("history-list").children) fillHistoryItem(li);
  if (list) list.refresh();
}

// ---------------------------------------------------------------------------------------------
// Start

async function start() {
  list = new VirtualList($("calls-viewport"), $("calls-spacer"), { create: createRow, fill: fillRow });
  $("form-number").addEventListener("submit", requestCode);
  $("form-proof").addEventListener("submit", authenticate);
  $("resend").addEventListener("click", () => requestCode());
  $("change-number").addEventListener("click", () => {
    clearAll();
    showStep("number");
  });
  $("months").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-month]");
    if (b) loadMonth(b.dataset.month);
  });
  $("show-history").addEventListener("click", loadHistory);
  $("history-back").addEventListener("click", () => {
    if (state.loader) state.loader.abort();
    showStep("calls");
    list.refresh();
  });
  $("sign-out").addEventListener("click", signOut);
  $("sign-out-2").addEventListener("click", signOut);
  $("idle-stay").addEventListener("click", touched);
  $("lang").addEventListener("click", () => {
    setLang(currentLang() === "en" ? "zh-CN" : "en");
    renderAll();
  });
  for (const type of ["pointerdown", "keydown", "input", "wheel", "touchstart"]) {
    document.addEventListener(type, touched, { capture: true, passive: true });
  }
  $("calls-viewport").addEventListener("scroll", touched, { passive: true });
  // Leaving the page (closing the tab, navigating away) must not leave a session behind.
  window.addEventListener("pagehide", () => {
    if (state.signedIn) endSession(true);
  });

  renderAll();
  try {
    state.config = { ...state.config, ...(await pageConfig()) };
  } catch (err) {
    explain(err, "config");
  }
  startChallenge().catch((err) => explain(err, "config"));
  document.body.classList.toggle("kiosk", state.config.channel === "kiosk");
  document.body.dataset.channel = state.config.channel;
  if (state.config.channel === "none") {
    for (const el of document.querySelectorAll("form button, form input")) el.disabled = true;
    showMessage("error", "errNoChannel");
  }
  renderAll();
  showStep("number");
  setInterval(idleTick, 1000);
  document.body.dataset.ready = "true";
}

start();
