// The counter screen on a hall clerk terminal: staff sign-in (password + authenticator code, and
// the forced password change when it is due) → a customer session the customer proved (ID card,
// or service password + SMS code on the PIN pad) for a stated purpose → the masked profile, the
// code SMS's delivery, the guided service password reset → close. Never call details (R9).
//
// Both credentials live in HttpOnly cookies the screen never sees: the staff session
// (__Host-hallgate-staff, sent as the bearer) and the customer session (__Host-hallgate-customer,
// filling the empty customerSession field). Customer data lives only in the DOM and in this
// module's memory, and every way out of a session (close, sign-out, idle, expiry) clears both.

import { ApiError, pageConfig, unary } from "/api.js";
import { applyStatic, currentLang, formatDateTime, formatWait, has, setLang, t } from "./words.js";
import { analyse, normalize } from "./idcard.js";

const STAFF = "/hallgate.v1.StaffService/";
const CLERK = "/hallgate.v1.ClerkService/";
const $ = (id) => document.getElementById(id);
const STEPS = ["refusal", "sign-in", "change", "open", "session"];
const RESET_PURPOSE = "SESSION_PURPOSE_PASSWORD_RESET";
const NEEDS_REASON = new Set(["SESSION_PURPOSE_COMPLAINT", "SESSION_PURPOSE_OTHER"]);

const state = {
  config: { channel: "unknown", terminal: "", hall: "" },
  step: "",
  busy: false,
  staff: null, // {id, idleSeconds}
  pending: null, // {staffId, password}: a sign-in refused for an expired password, until it is changed
  session: null, // {purpose, idleSeconds, profile}
  message: null, // {kind, key, params}
  fieldErrors: new Map(), // element → {key, params}
  codeSent: null, // {msisdn, valid}
  delivery: null, // {state, queuedAt, updatedAt}
  resetDone: null, // the server's next step
  lastInput: Date.now(),
  epoch: 0, // bumps whenever the screen is cleared: an answer to a call made before is dropped
};

// ---------------------------------------------------------------------------------------------
// Messages and field errors

/** Parameters that are themselves localized: {wait: s} → "15 分钟", {key, params} → its text. */
function localParams(params) {
  const out = {};
  for (const [k, v] of Object.entries(params || {})) {
    if (v && typeof v === "object" && "wait" in v) out[k] = formatWait(v.wait);
    else if (v && typeof v === "object" && "key" in v) out[k] = t(v.key, localParams(v.params));
    else out[k] = v;
  }
  return out;
}

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
  el.dataset.key = m.key;
  el.textContent = t(m.key, localParams(m.params));
  el.hidden = false;
  if (m.kind === "error") el.scrollIntoView({ block: "nearest" });
}

/** The error element for `field` in `scope` (a form), or null. */
function errorElement(scope, field) {
  return scope.querySelector(`.field-error[data-for="${CSS.escape(field)}"]`);
}

function setFieldError(el, key, params = {}) {
  state.fieldErrors.set(el, { key, params });
  renderFieldErrors();
}

function clearFieldErrors() {
  state.fieldErrors.clear();
  renderFieldErrors();
}

function renderFieldErrors() {
  for (const el of document.querySelectorAll(".field-error")) {
    const e = state.fieldErrors.get(el);
    el.textContent = e ? t(e.key, localParams(e.params)) : "";
    el.hidden = !e;
    if (!el.id) continue;
    for (const input of document.querySelectorAll(`input[aria-describedby~="${el.id}"], select[aria-describedby~="${el.id}"]`)) {
      if (e) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
  }
}

/** Typing in a field takes its error away (before the field's own checks run again). */
function clearOwnError(event) {
  const owner = event.target.closest("[aria-describedby]");
  if (!owner) return;
  let changed = false;
  for (const id of owner.getAttribute("aria-describedby").split(/\s+/)) {
    const el = document.getElementById(id);
    if (el && state.fieldErrors.delete(el)) changed = true;
  }
  if (changed) renderFieldErrors();
}

/** A BadRequest violation's words: what the API said, in this language when known. */
function violationHint(v) {
  const desc = (v.description || "").trim();
  if (has("desc:" + desc)) return { key: "desc:" + desc };
  return { key: "hint:" + v.field };
}

// ---------------------------------------------------------------------------------------------
// Errors: one place maps every API error to what the clerk is told, never more than the API said.

function explain(err, where, scope) {
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
        const el = scope ? errorElement(scope, v.field) : null;
        if (!el) continue;
        const hint = violationHint(v);
        setFieldError(el, has(hint.key) ? "fieldBad" : "fieldBadPlain", { label: { key: "field:" + v.field }, hint });
        shown = true;
      }
      if (shown) clearMessage();
      else showMessage("error", "errInvalid");
      return;
    }
    case "unauthenticated":
      if (reason === "STAFF_SIGN_IN_REQUIRED") {
        staffGone("errStaffSessionGone");
      } else if (reason === "REVOKED_TERMINAL" || reason === "NO_IDENTITY") {
        showMessage("error", "errRevoked");
      } else if (where === "signIn" || where === "change") {
        showMessage("error", "errStaffCredentials");
      } else if (where === "open") {
        showMessage("error", "errCustomerMismatch");
      } else if (reason === "CUSTOMER_GONE") {
        customerGone("errCustomerGone");
      } else {
        showMessage("error", "errInternal");
      }
      return;
    case "resource_exhausted":
      if (reason.startsWith("STAFF_LOCKED")) showMessage("error", retry ? "errStaffLocked" : "errStaffLockedNoTime", { retry });
      else if (reason.startsWith("LOCKED")) showMessage("error", retry ? "errNumberLocked" : "errNumberLockedNoTime", { retry });
      else if (reason === "SEND_THROTTLED") showMessage("error", retry ? "errSendThrottled" : "errSendThrottledNoTime", { retry });
      else showMessage("error", retry ? "errThrottled" : "errThrottledNoTime", { retry });
      return;
    case "permission_denied":
      if (reason === "PURPOSE_MISMATCH") {
        const purpose = state.session ? state.session.purpose : "SESSION_PURPOSE_UNSPECIFIED";
        showMessage("error", "errPurposeMismatch", { purpose: { key: "purpose:" + purpose } });
      } else if (reason === "ID_DOCUMENT_REQUIRED") {
        showMessage("error", "errIdDocumentRequired");
      } else if (reason === "CUSTOMER_SESSION_REQUIRED") {
        customerGone("errCustomerSessionGone");
      } else if (reason === "WRONG_TERMINAL_FOR_ROLE") {
        showMessage("error", "errWrongTerminal");
      } else if (reason === "ROLE") {
        showMessage("error", "errRole");
      } else if (reason === "CSRF" || reason === "ORIGIN_NOT_ALLOWED") {
        showMessage("error", "errCsrf");
      } else {
        showMessage("error", "errTerminal");
      }
      return;
    case "failed_precondition":
      showMessage("error", reason === "PASSWORD_EXPIRED" ? "errPasswordExpired" : "errPrecondition");
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
  for (const s of STEPS) $("step-" + s)?.toggleAttribute("hidden", s !== step);
  $("refusal").hidden = step !== "refusal";
  document.body.dataset.step = step;
  renderStaff();
  const focus = { "sign-in": state.pending ? "staff-password" : "staff-id", change: "new-password", open: "msisdn" }[step];
  if (focus && !$(focus).disabled) $(focus).focus({ preventScroll: true });
}

function setBusy(busy) {
  state.busy = busy;
  for (const el of document.querySelectorAll("main button")) el.disabled = busy;
  document.body.classList.toggle("busy", busy);
}

function digits(value) {
  // Full-width digits (from some input methods) as ASCII; spaces and dashes dropped.
  return String(value || "").replace(/[０-９]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0)).replace(/[\s-]/g, "");
}

/** "300s" (a protobuf Duration in JSON) → seconds. */
function seconds(duration, fallback) {
  const n = parseFloat(String(duration || ""));
  return Number.isFinite(n) ? n : fallback;
}

/** Runs `call` with the screen busy; its answer is dropped when the screen was cleared meanwhile. */
async function guarded(call) {
  if (state.busy) return;
  clearMessage();
  clearFieldErrors();
  setBusy(true);
  const epoch = state.epoch;
  try {
    await call(() => epoch === state.epoch);
  } finally {
    setBusy(false);
  }
}

// ---------------------------------------------------------------------------------------------
// Staff: sign-in, the forced password change, sign-out

async function signIn(event) {
  event.preventDefault();
  const form = $("form-sign-in");
  await guarded(async (current) => {
    const staffId = $("staff-id").value.trim();
    const password = $("staff-password").value;
    try {
      const answer = await unary(STAFF + "SignIn", { staffId, password, totpCode: digits($("totp").value) });
      if (!current()) return;
      state.staff = { id: staffId, idleSeconds: seconds(answer.idleTimeout, 900) };
      state.pending = null;
      form.reset();
      showStep("open");
    } catch (err) {
      if (!current()) return;
      $("totp").value = ""; // a code works once
      if (err instanceof ApiError && err.code === "failed_precondition" && (err.reason || "").toUpperCase() === "PASSWORD_EXPIRED") {
        state.pending = { staffId, password };
        form.reset();
        showStep("change");
        showMessage("error", "errPasswordExpired");
        return;
      }
      if (err instanceof ApiError && err.code !== "invalid_argument") $("staff-password").value = "";
      explain(err, "signIn", form);
    }
  });
}

async function changePassword(event) {
  event.preventDefault();
  const form = $("form-change");
  if (!state.pending) return;
  await guarded(async (current) => {
    const next = $("new-password").value;
    if (next !== $("new-password-2").value) {
      setFieldError(errorElement(form, "new_password_again"), "errMismatch");
      return;
    }
    try {
      await unary(STAFF + "ChangePassword", {
        staffId: state.pending.staffId, currentPassword: state.pending.password, newPassword: next,
        totpCode: digits($("change-totp").value),
      });
      if (!current()) return;
      const staffId = state.pending.staffId;
      state.pending = null;
      form.reset();
      $("form-sign-in").reset();
      $("staff-id").value = staffId;
      showStep("sign-in");
      $("staff-password").focus({ preventScroll: true });
      showMessage("notice", "passwordChanged");
    } catch (err) {
      if (!current()) return;
      $("change-totp").value = "";
      explain(err, "change", form);
    }
  });
}

function cancelChange() {
  state.pending = null;
  $("form-change").reset();
  clearMessage();
  clearFieldErrors();
  showStep("sign-in");
}

/** The staff session is gone (signed out, idle, disabled): everything on the screen goes. */
function staffGone(key) {
  clearEverything();
  showStep("sign-in");
  if (key) showMessage("error", key);
}

async function signOut() {
  if (state.busy) return;
  const hadSession = Boolean(state.session);
  clearEverything();
  showStep("sign-in");
  showMessage("notice", "signedOut");
  await endSessions(hadSession, true);
}

/** Ends the customer session and/or the staff session on the server; their answers clear the
 * cookies. Failures are ignored: a session that is already gone is what was wanted. */
async function endSessions(customer, staff, keepalive = false) {
  if (customer) {
    try {
      await unary(CLERK + "CloseCustomerSession", {}, { keepalive });
    } catch {
      // gone already (closed, timed out): the cookie stays until the next session replaces it
    }
  }
  if (staff) {
    try {
      await unary(STAFF + "SignOut", {}, { keepalive });
    } catch {
      // gone already
    }
  }
}

function renderStaff() {
  const who = $("staff-who");
  const signedIn = Boolean(state.staff) && (state.step === "open" || state.step === "session");
  who.hidden = !signedIn;
  who.textContent = signedIn ? t("signedInAs", { staff: state.staff.id }) : "";
  $("sign-out").hidden = !signedIn;
}

// ---------------------------------------------------------------------------------------------
// Opening a customer session

function proofKind() {
  return $("proof-pin").checked ? "pin" : "id";
}

function renderProofKind() {
  const pin = proofKind() === "pin";
  $("proof-id-fields").hidden = pin;
  $("proof-pin-fields").hidden = !pin;
}

function renderReason() {
  const needs = NEEDS_REASON.has($("purpose").value);
  const label = $("reason-label");
  label.dataset.i18n = needs ? "reasonRequired" : "reasonOptional";
  label.textContent = t(label.dataset.i18n);
  $("reason").required = needs;
}

/** The birth date as printed (年 月 日) as "YYYY-MM-DD"; "" when nothing was typed. */
function birthDate() {
  const [y, m, d] = ["y", "m", "d"].map((p) => digits($("doc-birth-" + p).value));
  if (!y && !m && !d) return "";
  return `${y.padStart(4, "0")}-${m.padStart(2, "0")}-${d.padStart(2, "0")}`;
}

/** The ID number as typed, checked at once: the check character, then what the number says of
 * the birth date and sex against what was typed for them. */
function renderIdCheck() {
  const box = $("doc-check");
  const a = analyse($("doc-number").value);
  box.hidden = a.state === "empty" || a.state === "partial";
  box.dataset.state = a.state;
  const key = { ok: "checkOk", check: "checkBad", shape: "checkShape", birth: "checkBirth" }[a.state];
  box.textContent = key ? t(key) : "";
  box.classList.toggle("bad", a.state !== "ok");
  const form = $("form-open");
  const birthEl = errorElement(form, "id_document.birth_date");
  const sexEl = errorElement(form, "id_document.sex");
  for (const el of [birthEl, sexEl]) {
    const e = state.fieldErrors.get(el);
    if (e && e.live) state.fieldErrors.delete(el);
  }
  if (a.state === "ok") {
    const birth = birthDate();
    // (an error the API gave for the field stays until the field is changed)
    if (birth && birth !== a.birthDate && !state.fieldErrors.has(birthEl)) {
      state.fieldErrors.set(birthEl, { key: "birthMismatch", params: { date: a.birthDate }, live: true });
    }
    const sex = document.querySelector("input[name=sex]:checked")?.value;
    const said = a.sex === "male" ? "DOCUMENT_SEX_MALE" : "DOCUMENT_SEX_FEMALE";
    if (sex && sex !== said && !state.fieldErrors.has(sexEl)) {
      state.fieldErrors.set(sexEl, { key: "sexMismatch", params: { sex: { key: a.sex } }, live: true });
    }
  }
  renderFieldErrors();
}

async function requestCode() {
  const form = $("form-open");
  await guarded(async (current) => {
    const msisdn = digits($("msisdn").value);
    try {
      const answer = await unary(CLERK + "RequestCustomerCode", { msisdn });
      if (!current()) return;
      state.codeSent = { msisdn, valid: seconds(answer.codeValidFor, 300) };
      renderCodeSent();
      $("pin-password").focus({ preventScroll: true });
    } catch (err) {
      if (current()) explain(err, "code", form);
    }
  });
}

function renderCodeSent() {
  const c = state.codeSent;
  $("code-sent").hidden = !c;
  $("code-sent").textContent = c ? t("codeSent", { msisdn: c.msisdn, valid: formatWait(c.valid) }) : "";
}

function openRequest() {
  const request = { msisdn: digits($("msisdn").value) };
  if ($("purpose").value) request.purpose = $("purpose").value;
  const reason = $("reason").value.trim();
  if (reason) request.reason = reason;
  if (proofKind() === "pin") {
    request.passwordAndCode = { servicePassword: digits($("pin-password").value), oneTimeCode: digits($("pin-code").value) };
  } else {
    const doc = {
      documentType: "ID_DOCUMENT_TYPE_RESIDENT_ID_CARD", documentNumber: normalize($("doc-number").value),
      name: $("doc-name").value.trim(), birthDate: birthDate(),
    };
    const sex = document.querySelector("input[name=sex]:checked")?.value;
    if (sex) doc.sex = sex;
    request.idDocument = doc;
  }
  return request;
}

async function openSession(event) {
  event.preventDefault();
  const form = $("form-open");
  if (proofKind() === "id") {
    // A misread number never leaves the screen: the clerk re-reads the card first.
    const a = analyse($("doc-number").value);
    if (a.state === "check" || a.state === "shape" || a.state === "partial" || a.state === "birth") {
      clearMessage();
      clearFieldErrors();
      const key = { check: "checkBad", birth: "checkBirth" }[a.state] || "checkShape";
      setFieldError(errorElement(form, "id_document.document_number"), key);
      $("doc-number").focus({ preventScroll: true });
      return;
    }
  }
  await guarded(async (current) => {
    const request = openRequest();
    try {
      const answer = await unary(CLERK + "OpenCustomerSession", request);
      if (!current()) {
        await endSessions(true, false);
        return;
      }
      state.session = { purpose: answer.purpose || request.purpose, idleSeconds: seconds(answer.idleTimeout, 600), profile: null };
      clearOpenForm();
      const profile = await unary(CLERK + "GetCustomerProfile", {});
      if (!current()) return;
      state.session.profile = profile;
      if (profile.purpose) state.session.purpose = profile.purpose;
      renderSession();
      showStep("session");
    } catch (err) {
      if (!current()) return;
      if (state.session) {
        // opened, but the profile could not be read: the session is shown without it
        renderSession();
        showStep("session");
        explain(err, "session", $("step-session"));
        return;
      }
      if (err instanceof ApiError && err.code !== "invalid_argument") {
        $("pin-password").value = "";
        $("pin-code").value = "";
      }
      explain(err, "open", form);
    }
  });
}

/** Everything the customer or the clerk typed about the customer goes. */
function clearOpenForm() {
  $("form-open").reset();
  state.codeSent = null;
  renderCodeSent();
  renderProofKind();
  renderReason();
  renderIdCheck();
}

// ---------------------------------------------------------------------------------------------
// The session: profile, code delivery, reset, close

function renderSession() {
  const s = state.session;
  const p = (s && s.profile) || {};
  $("p-msisdn").textContent = p.msisdnMasked || "";
  $("p-name").textContent = p.nameMasked || "";
  $("p-document").textContent = p.documentNumberMasked || "";
  $("p-address").textContent = p.addressDistrict || "";
  $("p-plan").textContent = p.planName || "";
  $("p-status").textContent = p.accountStatus ? (has("status:" + p.accountStatus) ? t("status:" + p.accountStatus) : p.accountStatus) : "";
  $("p-proved").textContent = p.provedBy ? (has("proved:" + p.provedBy) ? t("proved:" + p.provedBy) : p.provedBy) : "";
  $("p-purpose").textContent = s ? t("purpose:" + (s.purpose || "SESSION_PURPOSE_UNSPECIFIED")) : "";
  $("p-purpose").dataset.purpose = s ? s.purpose || "" : "";
  $("p-proved").dataset.proof = p.provedBy || "";
  const resettable = Boolean(s) && s.purpose === RESET_PURPOSE && p.provedBy === "id_document";
  $("reset-needs").hidden = !s || resettable;
  renderDelivery();
  const done = state.resetDone;
  $("reset-done").hidden = !done;
  if (done) $("next-step").textContent = currentLang() === "en" && done.text ? done.text : t("nextStep");
}

function renderDelivery() {
  const box = $("delivery");
  const d = state.delivery;
  box.hidden = !d;
  if (!d) {
    box.textContent = "";
    return;
  }
  box.dataset.state = d.state;
  const what = t("deliveryState", { state: t("delivery:" + d.state) });
  const times = d.queuedAt ? (currentLang() === "en" ? " " : "") + t("deliveryTimes", { queued: formatDateTime(d.queuedAt), updated: formatDateTime(d.updatedAt) }) : "";
  box.textContent = what + times;
}

async function checkDelivery() {
  await guarded(async (current) => {
    try {
      const answer = await unary(CLERK + "GetCodeDelivery", {});
      if (!current()) return;
      state.delivery = { state: answer.state || "CODE_DELIVERY_STATE_UNSPECIFIED", queuedAt: answer.queuedAt, updatedAt: answer.updatedAt };
      renderDelivery();
    } catch (err) {
      if (current()) explain(err, "delivery", $("step-session"));
    }
  });
}

function startReset() {
  clearMessage();
  clearFieldErrors();
  state.resetDone = null;
  renderSession();
  $("form-reset").hidden = false;
  $("start-reset").hidden = true;
  $("new-pw").focus({ preventScroll: true });
}

function cancelReset() {
  $("form-reset").reset();
  $("form-reset").hidden = true;
  $("start-reset").hidden = false;
  clearFieldErrors();
}

async function resetPassword(event) {
  event.preventDefault();
  const form = $("form-reset");
  await guarded(async (current) => {
    const next = digits($("new-pw").value);
    if (next !== digits($("new-pw-2").value)) {
      setFieldError(errorElement(form, "new_service_password_again"), "errMismatch");
      $("new-pw-2").value = "";
      return;
    }
    try {
      const answer = await unary(CLERK + "ResetServicePassword", { newServicePassword: next });
      if (!current()) return;
      form.reset();
      form.hidden = true;
      $("start-reset").hidden = false;
      state.resetDone = { text: answer.nextStep || "" };
      renderSession();
    } catch (err) {
      if (!current()) return;
      form.reset();
      explain(err, "reset", form);
      if (err instanceof ApiError && err.code === "invalid_argument") $("new-pw").focus({ preventScroll: true });
    }
  });
}

/** The customer session is gone (closed, idle, expired): its data goes; the clerk stays signed in. */
function customerGone(key, kind = "error") {
  clearSession();
  showStep("open");
  if (key) showMessage(kind, key);
}

function clearSession() {
  state.epoch++;
  state.session = null;
  state.delivery = null;
  state.resetDone = null;
  $("form-reset").reset();
  $("form-reset").hidden = true;
  $("start-reset").hidden = false;
  clearOpenForm();
  renderSession();
  clearFieldErrors();
  clearMessage();
}

async function closeSession() {
  if (state.busy || !state.session) return;
  customerGone("sessionClosed", "notice");
  await endSessions(true, false);
}

function clearEverything() {
  clearSession();
  state.staff = null;
  state.pending = null;
  $("form-sign-in").reset();
  $("form-change").reset();
}

// ---------------------------------------------------------------------------------------------
// Idle: the customer session (and the staff session) end after their idle time without input.

function touched() {
  state.lastInput = Date.now();
}

async function idleTick() {
  const idle = (Date.now() - state.lastInput) / 1000;
  if (state.staff && idle >= state.staff.idleSeconds) {
    const hadSession = Boolean(state.session);
    staffGone("");
    showMessage("notice", "errStaffSessionGone");
    await endSessions(hadSession, true);
  } else if (state.session && idle >= state.session.idleSeconds) {
    customerGone("idleCustomer", "notice");
    await endSessions(true, false);
  }
}

// ---------------------------------------------------------------------------------------------
// Language, refusal, start

function renderAll() {
  applyStatic();
  $("lang").textContent = t("switchLang");
  $("lang").lang = currentLang() === "en" ? "zh-CN" : "en";
  const c = state.config;
  $("terminal").hidden = !c.terminal;
  $("terminal").textContent = c.terminal ? t("terminal", { terminal: c.terminal }) : "";
  $("refusal-text").textContent = t("refusedText", { what: t("channel:" + (has("channel:" + c.channel) ? c.channel : "unknown")) });
  renderMessage();
  if (state.step === "refusal") return; // its forms are gone
  renderReason();
  renderMessage();
  renderFieldErrors();
  renderIdCheck();
  renderCodeSent();
  renderSession();
  renderStaff();
}

function refuse() {
  for (const el of document.querySelectorAll("main form")) el.remove(); // nothing to type into
  showStep("refusal");
}

async function start() {
  $("form-sign-in").addEventListener("submit", signIn);
  $("form-change").addEventListener("submit", changePassword);
  $("change-cancel").addEventListener("click", cancelChange);
  $("sign-out").addEventListener("click", signOut);
  $("form-open").addEventListener("submit", openSession);
  for (const form of document.querySelectorAll("main form")) form.addEventListener("input", clearOwnError, { capture: true });
  for (const id of ["proof-id", "proof-pin"]) $(id).addEventListener("change", () => {
    clearFieldErrors();
    renderProofKind();
  });
  $("purpose").addEventListener("change", renderReason);
  for (const id of ["doc-number", "doc-birth-y", "doc-birth-m", "doc-birth-d", "doc-sex-male", "doc-sex-female"]) {
    $(id).addEventListener("input", renderIdCheck);
  }
  for (const id of ["doc-sex-male", "doc-sex-female"]) $(id).addEventListener("change", renderIdCheck);
  $("send-code").addEventListener("click", requestCode);
  $("start-reset").addEventListener("click", startReset);
  $("cancel-reset").addEventListener("click", cancelReset);
  $("form-reset").addEventListener("submit", resetPassword);
  $("check-delivery").addEventListener("click", checkDelivery);
  $("close-session").addEventListener("click", closeSession);
  $("lang").addEventListener("click", () => {
    setLang(currentLang() === "en" ? "zh-CN" : "en");
    renderAll();
  });
  for (const type of ["pointerdown", "keydown", "input", "wheel", "touchstart"]) {
    document.addEventListener(type, touched, { capture: true, passive: true });
  }
  // Leaving the page (closing it, reloading) must not leave a session behind at the counter.
  window.addEventListener("pagehide", () => {
    if (state.staff) endSessions(Boolean(state.session), true, true);
  });

  renderAll();
  try {
    state.config = { ...state.config, ...(await pageConfig()) };
  } catch (err) {
    explain(err, "config");
  }
  document.body.dataset.channel = state.config.channel;
  renderAll();
  if (state.config.channel !== "clerk") refuse();
  else {
    showStep("sign-in");
    setInterval(idleTick, 1000);
  }
  document.body.dataset.ready = "true";
}

start();
