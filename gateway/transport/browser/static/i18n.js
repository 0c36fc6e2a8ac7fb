// Every text the page shows, in Chinese (the default) and English, and the formats of dates,
// durations, amounts and waiting times. Nothing else in the page holds a user-visible string.

const ZONE = "Asia/Shanghai"; // the operator's zone: call times and months are in it

const STRINGS = {
  "zh-CN": {
    title: "通话详单自助查询",
    switchLang: "English",
    channelKiosk: "营业厅自助终端",
    channelWeb: "网上营业厅",
    stepNumber: "第一步：输入手机号码",
    numberHint: "我们会向该号码发送短信验证码。",
    msisdn: "手机号码",
    msisdnPlaceholder: "11 位手机号码",
    sendCode: "获取验证码",
    stepProof: "第二步：输入服务密码和验证码",
    servicePassword: "服务密码",
    passwordPlaceholder: "6 位数字",
    oneTimeCode: "短信验证码",
    codePlaceholder: "6 位数字",
    signIn: "验证并查询",
    resend: "重新获取验证码",
    resendIn: "重新获取验证码（{seconds} 秒）",
    changeNumber: "更换号码",
    codeSent: "如果 {msisdn} 是本公司的有效号码，验证码已通过短信发送，{valid}内有效。",
    stepCalls: "通话详单",
    chooseMonth: "请选择月份：",
    history: "访问记录",
    signOut: "退出",
    backToCalls: "返回详单",
    colTime: "时间",
    colKind: "类型",
    colDirection: "方向",
    colParty: "对方号码",
    colAmount: "时长 / 流量",
    colCharge: "费用",
    loading: "{month}：正在加载，已收到 {count} 条……",
    loaded: "{month}：共 {count} 条记录",
    loadStopped: "{month}：已收到 {count} 条，加载中断，列表不完整。",
    loadFailed: "{month}：未能加载。",
    empty: "该月没有记录。",
    historyLoading: "正在加载访问记录……",
    historyLoaded: "共 {count} 条访问记录",
    historyEmpty: "暂无访问记录。",
    outgoing: "呼出",
    incoming: "呼入",
    voice: "通话",
    sms: "短信",
    data: "上网",
    unknownKind: "其他",
    signedOut: "您已安全退出，页面上的信息已清除。",
    idleWarning: "长时间无操作，为保护您的隐私，{seconds} 秒后将自动退出并清屏。",
    idleStay: "继续使用",
    idleCleared: "因长时间无操作，已自动退出并清除页面上的信息。",
    privacy: "您的通话详单仅向号码机主本人提供。使用完毕请点击“退出”。",
    // errors
    errWrongCredentials: "验证未通过：号码、服务密码或验证码有误，或验证码已过期。请核对后重试。",
    errLocked: "验证失败次数过多，该号码的自助查询已被暂时锁定。请在 {retry}后再试。",
    errLockedNoTime: "验证失败次数过多，该号码的自助查询已被暂时锁定。请稍后再试。",
    errThrottled: "操作过于频繁，请在 {retry}后再试。",
    errThrottledNoTime: "操作过于频繁，请稍后再试。",
    errInvalid: "请检查输入的内容。",
    errChallenge: "安全验证未通过，请刷新页面后重试。",
    errCsrf: "页面已过期，请刷新页面后重试。",
    errPermission: "当前终端或渠道无权办理此项业务。",
    errSessionExpired: "会话已过期或已结束，请重新验证。",
    errUnavailable: "服务暂时不可用，请稍后再试。",
    errNetwork: "网络连接失败，请检查网络后重试。",
    errTimeout: "请求超时，请稍后再试。",
    errPrecondition: "暂时无法办理此项业务，请到营业厅咨询。",
    errInternal: "系统出现错误，未返回任何信息。请稍后再试。",
    errNoChannel: "本服务暂未在此渠道开放，请前往营业厅自助终端办理。",
    // access history: the server's words (gateway/domain/kiosk.py HISTORY_WORDS) in this language
    "what:call list viewed at a self-service kiosk": "在自助终端查看通话详单",
    "what:sign-in at a self-service kiosk": "在自助终端登录验证",
    "what:access history viewed at a self-service kiosk": "在自助终端查看访问记录",
    "what:identified at a service hall counter": "在营业厅柜台核验身份",
    "what:profile viewed at a service hall counter": "在营业厅柜台查看客户资料",
    "what:service password reset at a service hall counter": "在营业厅柜台重置服务密码",
    "what:code SMS delivery checked at a service hall counter": "在营业厅柜台查询验证码短信送达情况",
    whatRecords: "{what}（{count} 条）",
    "channel:kiosk": "自助终端",
    "channel:clerk": "营业厅柜台",
    "channel:web": "网上营业厅",
    "outcome:allowed": "成功",
    "outcome:refused": "被拒绝",
    // fields: labels and what a valid value looks like
    field_msisdn: "手机号码",
    field_service_password: "服务密码",
    field_one_time_code: "短信验证码",
    field_month: "月份",
    fieldBad: "{label}不正确：{hint}",
    fieldBadPlain: "{label}不正确。",
    hint_msisdn: "请输入以 1 开头的 11 位数字。",
    hint_service_password: "服务密码为 6 位数字。",
    hint_one_time_code: "验证码为短信中的 6 位数字。",
    hint_month: "只能查询最近 {months} 个月。",
    // units
    seconds: "{n} 秒",
    minutes: "{n} 分钟",
    hoursMinutes: "{h} 小时 {m} 分钟",
    hours: "{h} 小时",
    durationMS: "{m}分{s}秒",
    durationS: "{s}秒",
  },
  en: {
    title: "Call list self-service",
    switchLang: "中文",
    channelKiosk: "Hall kiosk",
    channelWeb: "Website",
    stepNumber: "Step 1: your mobile number",
    numberHint: "We will send a code by SMS to this number.",
    msisdn: "Mobile number",
    msisdnPlaceholder: "11 digits",
    sendCode: "Send code",
    stepProof: "Step 2: service password and code",
    servicePassword: "Service password",
    passwordPlaceholder: "6 digits",
    oneTimeCode: "Code from the SMS",
    codePlaceholder: "6 digits",
    signIn: "Verify and continue",
    resend: "Send a new code",
    resendIn: "Send a new code ({seconds} s)",
    changeNumber: "Use another number",
    codeSent: "If {msisdn} is one of our numbers, a code was sent to it by SMS. It is valid for {valid}.",
    stepCalls: "Call list",
    chooseMonth: "Choose a month:",
    history: "Access history",
    signOut: "Sign out",
    backToCalls: "Back to the call list",
    colTime: "Time",
    colKind: "Type",
    colDirection: "Direction",
    colParty: "Other party",
    colAmount: "Duration / data",
    colCharge: "Charge",
    loading: "{month}: loading, {count} records so far…",
    loaded: "{month}: {count} records",
    loadStopped: "{month}: {count} records received, then loading stopped: the list is incomplete.",
    loadFailed: "{month}: could not be loaded.",
    empty: "No records in this month.",
    historyLoading: "Loading the access history…",
    historyLoaded: "{count} accesses",
    historyEmpty: "No accesses recorded.",
    outgoing: "Outgoing",
    incoming: "Incoming",
    voice: "Call",
    sms: "SMS",
    data: "Data",
    unknownKind: "Other",
    signedOut: "You have signed out. Your information was cleared from the screen.",
    idleWarning: "No activity for a while: to protect your privacy you will be signed out and the screen cleared in {seconds} s.",
    idleStay: "Continue",
    idleCleared: "You were signed out after a period of inactivity and the screen was cleared.",
    privacy: "Call lists are shown only to the owner of the number. Please sign out when you are done.",
    errWrongCredentials: "Verification failed: the number, service password or code is wrong, or the code has expired. Please check and try again.",
    errLocked: "Too many failed attempts: self-service for this number is locked for now. Please try again in {retry}.",
    errLockedNoTime: "Too many failed attempts: self-service for this number is locked for now. Please try again later.",
    errThrottled: "Too many requests. Please try again in {retry}.",
    errThrottledNoTime: "Too many requests. Please try again later.",
    errInvalid: "Please check what you entered.",
    errChallenge: "The security check failed. Please reload the page and try again.",
    errCsrf: "This page has expired. Please reload it and try again.",
    errPermission: "This terminal or channel may not do this.",
    errSessionExpired: "Your session has expired or ended. Please verify again.",
    errUnavailable: "The service is unavailable at the moment. Please try again later.",
    errNetwork: "No connection. Please check the network and try again.",
    errTimeout: "The request timed out. Please try again later.",
    errPrecondition: "This cannot be done here right now. Please ask at a hall counter.",
    errInternal: "Something went wrong; nothing was shown. Please try again later.",
    errNoChannel: "This service is not offered on this channel. Please use a kiosk in one of our halls.",
    whatRecords: "{what} ({count} records)",
    "channel:kiosk": "kiosk",
    "channel:clerk": "hall counter",
    "channel:web": "website",
    "outcome:allowed": "allowed",
    "outcome:refused": "refused",
    field_msisdn: "Mobile number",
    field_service_password: "Service password",
    field_one_time_code: "Code",
    field_month: "Month",
    fieldBad: "{label} is not valid: {hint}",
    fieldBadPlain: "{label} is not valid.",
    hint_msisdn: "enter 11 digits starting with 1.",
    hint_service_password: "the service password is 6 digits.",
    hint_one_time_code: "the code is the 6 digits in the SMS.",
    hint_month: "only the last {months} months can be shown.",
    seconds: "{n} s",
    minutes: "{n} min",
    hoursMinutes: "{h} h {m} min",
    hours: "{h} h",
    durationMS: "{m}:{ss}",
    durationS: "0:{ss}",
  },
};

export const LANGS = Object.keys(STRINGS);
const STORE_KEY = "hallgate-lang"; // the language only: never customer data

let lang = "zh-CN";
try {
  const saved = localStorage.getItem(STORE_KEY);
  if (saved && STRINGS[saved]) lang = saved;
} catch {
  // storage unavailable: the default language
}

export function currentLang() {
  return lang;
}

export function setLang(next) {
  if (!STRINGS[next]) return;
  lang = next;
  try {
    localStorage.setItem(STORE_KEY, next);
  } catch {
    // not remembered; still switched
  }
  formats = makeFormats();
}

/** The text for `key`, or `fallback` when no language has it. */
export function tOr(key, fallback, params = {}) {
  return key in STRINGS[lang] ? t(key, params) : fallback;
}

/** The access history's `what` (the server's English words, "… (N records)") in this language. */
export function historyWhat(what) {
  const m = /^(.*) \((\d+) records\)$/.exec(what || "");
  if (!m) return tOr("what:" + what, what);
  return t("whatRecords", { what: tOr("what:" + m[1], m[1]), count: formatCount(Number(m[2])) });
}

/** The text for `key` with {name} placeholders filled from `params`. */
export function t(key, params = {}) {
  const s = STRINGS[lang][key] ?? STRINGS["zh-CN"][key] ?? key;
  return s.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/** Fill every element carrying data-i18n (text) or data-i18n-placeholder / data-i18n-label. */
export function applyStatic(root = document) {
  document.documentElement.lang = lang;
  document.title = t("title");
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
}

function makeFormats() {
  const locale = lang === "en" ? "en-GB" : "zh-CN";
  return {
    time: new Intl.DateTimeFormat(locale, {
      timeZone: ZONE, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
      hourCycle: "h23",
    }),
    dateTime: new Intl.DateTimeFormat(locale, {
      timeZone: ZONE, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      hourCycle: "h23",
    }),
    month: new Intl.DateTimeFormat(locale, { timeZone: "UTC", year: "numeric", month: "long" }),
    number: new Intl.NumberFormat(locale),
  };
}

let formats = makeFormats();

export function formatTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : formats.time.format(d);
}

export function formatDateTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : formats.dateTime.format(d);
}

/** "2026-11" → 2026年11月 / November 2026. */
export function formatMonth(month) {
  const [y, m] = month.split("-").map(Number);
  return formats.month.format(new Date(Date.UTC(y, m - 1, 1)));
}

export function formatCount(n) {
  return formats.number.format(n);
}

/** A waiting time, rounded up: 45 秒 / 15 分钟 / 1 小时 5 分钟. */
export function formatWait(seconds) {
  const s = Math.max(1, Math.ceil(seconds));
  if (s < 60) return t("seconds", { n: s });
  const minutes = Math.ceil(s / 60);
  if (minutes < 60) return t("minutes", { n: minutes });
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return m ? t("hoursMinutes", { h, m }) : t("hours", { h });
}

/** A call's duration: 1分05秒 / 1:05. */
export function formatDuration(seconds) {
  const s = Math.max(0, Number(seconds) || 0);
  const m = Math.floor(s / 60);
  const r = s % 60;
  const ss = String(r).padStart(2, "0");
  return m ? t("durationMS", { m, s: ss, ss }) : t("durationS", { s: r, ss });
}

export function formatBytes(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
  if (n < 1024 ** 3) return (n / 1024 ** 2).toFixed(1) + " MB";
  return (n / 1024 ** 3).toFixed(2) + " GB";
}

/** Fen (int64 as a JSON string) → ¥0.50. */
export function formatFen(fen) {
  const n = Number(fen) || 0;
  return "¥" + (n / 100).toFixed(2);
}
