// Every text the legal desk shows, in Chinese (the default) and English, and its formats. The
// server's own words (a field violation's description, a reason given in the history) are shown as
// the server wrote them.

const ZONE = "Asia/Shanghai";

const STRINGS = {
  "zh-CN": {
    title: "法务工作台",
    signOut: "退出",
    navList: "调取申请登记簿",
    navRegister: "登记新申请",
    refusedTitle: "此终端不能使用法务工作台",
    refusedText: "本页面只能在分公司法务部的法务终端上使用。当前证书属于：{what}。",
    refusedNone: "没有终端证书（网站访问）",
    refusedHint: "执法机关调取数据的申请只能由分公司法务部在法务终端上办理，营业厅和自助终端不能办理。",
    signInTitle: "工作人员登录",
    signInHint: "请输入工号、密码和身份验证器中的 6 位动态码。",
    staffId: "工号",
    password: "密码",
    totp: "动态码",
    totpPlaceholder: "6 位数字",
    signIn: "登录",
    signedOut: "您已退出。",
    terminal: "终端 {terminal}",
    who: "{staff}（{role}）",
    "role:legal_officer": "法务专员",
    "role:legal_approver": "法务审批人",
    "role:auditor": "审计员",
    listTitle: "调取申请登记簿",
    refresh: "刷新",
    fState: "状态",
    fAgency: "机关名称",
    fAgencyPlaceholder: "完整名称",
    fCase: "案件编号",
    fDeadline: "期限",
    "deadline:any": "全部",
    "deadline:pending": "审批后待提供（有期限）",
    "deadline:week": "7 天内到期",
    "deadline:lapsed": "已过期",
    applyFilters: "筛选",
    anyState: "全部状态",
    colId: "申请编号",
    colState: "状态",
    colAgency: "调取机关",
    colCase: "案件编号",
    colRegistered: "登记时间",
    colDeadline: "审批有效期",
    more: "加载更多",
    listLoading: "正在加载……",
    listCount: "共显示 {count} 条申请",
    listCountFiltered: "共显示 {count} 条申请（期限筛选在本页已加载的申请中进行）",
    listEmpty: "没有符合条件的申请。",
    registerTitle: "登记新的调取申请",
    registerHint: "按来函所载内容逐项填写，并上传来函扫描件。登记后须由另一名法务审批人审批。",
    agency: "调取机关",
    agencyKind: "机关类别",
    agencyName: "机关全称（与来函一致）",
    agencyLevel: "机关级别",
    letter: "来函",
    letterReference: "来函文号",
    letterDate: "来函日期",
    letterFile: "来函扫描件（PDF、JPEG、PNG 或 TIFF，最大 8 MiB）",
    letterChosen: "{name}，{size}，{type}",
    theCase: "案件",
    caseNumber: "案件编号",
    legalBasis: "法律依据",
    officers: "经办警官（1 至 10 名）",
    officerName: "姓名",
    officerBadge: "警号",
    addOfficer: "＋ 增加一名警官",
    removeOfficer: "删除",
    whatAsked: "调取内容",
    targets: "涉及号码",
    targetsPlaceholder: "每行一个 11 位号码",
    categories: "数据类别",
    window: "时间范围",
    windowFrom: "起始日（含）",
    windowTo: "截止日（含）",
    registerSubmit: "登记",
    registered: "申请 {id} 已登记，等待另一名法务审批人审批。",
    backToList: "返回登记簿",
    requestTitle: "调取申请 {id}",
    "fact:agency": "调取机关",
    "fact:case": "案件编号",
    "fact:basis": "法律依据",
    "fact:officers": "经办警官",
    "fact:registered": "登记",
    "fact:approved": "审批",
    "fact:expires": "审批有效期至",
    "fact:reference": "文号",
    "fact:date": "日期",
    "fact:type": "类型",
    "fact:size": "大小",
    "fact:sha256": "SHA-256",
    byAt: "{who}，{at}",
    officerLine: "{name}（警号 {badge}）",
    agencyLine: "{name}（{kind}，{level}）",
    windowLine: "{start} 至 {end}（不含）",
    countdown: "审批将在 {left}后失效（{at}），失效前须完成提供，否则须重新审批。",
    countdownUrgent: "审批仅剩 {left}（{at} 失效），请尽快完成提供。",
    lapsed: "审批已于 {at} 失效。",
    left: "{d} 天 {h} 小时",
    leftHours: "{h} 小时 {m} 分钟",
    leftMinutes: "{m} 分钟",
    history: "办理记录",
    historyLine: "{from} → {to}",
    historyBy: "{who}（{role}）",
    "role:system": "系统",
    decide: "办理",
    reason: "理由（必填，记入办理记录）",
    reasonPlaceholder: "例如：已与来函机关电话核实来函",
    approve: "批准",
    reject: "驳回",
    fulfil: "提供数据（生成签名数据包）",
    markInvalid: "标记为无效",
    cancel: "撤销（机关撤回）",
    done: "申请 {id}：{state}。",
    letterFrame: "来函扫描件",
    letterShown: "来函扫描件已在上方显示，其 SHA-256 与登记时一致。",
    letterNotHeld: "接口不返回已存档的扫描件，只返回其 SHA-256。请打开手头的扫描件文件，系统将与登记时的 SHA-256 核对后显示。",
    letterMismatch: "所选文件（SHA-256 {sha}）不是登记的来函扫描件，未显示。",
    letterNoFrame: "服务器的安全策略不允许在本页内嵌显示扫描件，请下载后查看。",
    letterNotPdf: "该扫描件不是 PDF，请下载后查看。",
    downloadLetter: "下载扫描件",
    openLetter: "打开扫描件核对…",
    delivery: "数据提供与核验",
    loadKey: "载入网关公钥…",
    downloadPackage: "下载签名数据包",
    deliveryRunning: "正在接收数据包：已收到 {chunks} 段……",
    deliveryDone: "数据包 {id} 已接收：{chunks} 段，{calls} 条通话详单。",
    deliveryBroken: "数据包未完整接收（没有签名清单），已丢弃，不能使用。申请已退回待审批状态，须重新审批。",
    manifestOnly: "此申请已于此前提供，数据包只提供一次；以下为其签名清单。",
    keyNote: "签名须用网关公钥核验（主机上运行 hallgate legal public-key 获得）。",
    keyLoaded: "已载入公钥，密钥编号 {id}。",
    keyBad: "所选文件不是 Ed25519 公钥（PEM）。",
    verifiedAll: "核验通过：签名有效，内容与清单一致。",
    verifiedNoKey: "内容与清单一致；签名尚未核验（请载入网关公钥）。",
    verifyFailed: "核验未通过：{what}",
    "check:ok": "通过",
    "check:failed": "未通过",
    "check:pending": "未核验",
    "check:signature": "Ed25519 签名（密钥编号 {id}）",
    "check:key": "公钥与清单所列密钥编号一致",
    "check:content": "内容摘要 content_sha256 与数据一致",
    "check:counts": "段数、字节数及各号码的记录数与清单一致",
    "check:request": "清单所列申请、案件编号与来函 SHA-256 与本申请一致",
    "check:scope": "号码、类别与时间范围未超出审批范围",
    "check:manifestOnly": "签名清单（数据记录不再保存于网关）",
    packageHint: "数据包为 tar 文件：解包后用 hallgate legal verify 目录 --public-key 公钥文件 可离线复核。",
    // states
    "state:REQUEST_STATE_UNSPECIFIED": "未知",
    "state:REQUEST_STATE_AWAITING_APPROVAL": "待审批",
    "state:REQUEST_STATE_AWAITING_DISCLOSURE": "已批准，待提供",
    "state:REQUEST_STATE_DISCLOSING": "正在提供",
    "state:REQUEST_STATE_DISCLOSED": "已提供",
    "state:REQUEST_STATE_DISCLOSURE_NOT_AVAILABLE": "无可提供数据",
    "state:REQUEST_STATE_REJECTED": "已驳回",
    "state:REQUEST_STATE_INVALID": "无效",
    "state:REQUEST_STATE_CANCELLED": "已撤销",
    "state:REQUEST_STATE_EXPIRED": "审批已失效",
    "kind:AGENCY_KIND_PUBLIC_SECURITY": "公安机关",
    "kind:AGENCY_KIND_PROCURATORATE": "人民检察院",
    "kind:AGENCY_KIND_STATE_SECURITY": "国家安全机关",
    "level:AGENCY_LEVEL_NATIONAL": "国家级",
    "level:AGENCY_LEVEL_PROVINCIAL": "省级",
    "level:AGENCY_LEVEL_PREFECTURE": "地市级",
    "level:AGENCY_LEVEL_COUNTY": "县级（不受理）",
    "level:AGENCY_LEVEL_TOWNSHIP": "乡镇级或派出所（不受理）",
    choose: "请选择",
    "cat:DATA_CATEGORY_SUBSCRIBER_INFO": "用户登记信息",
    "cat:DATA_CATEGORY_CALL_DETAILS": "通话详单",
    "cat:DATA_CATEGORY_COMMUNICATION_CONTENT": "通信内容（不提供）",
    // errors, by what the API said
    errBadCredentials: "登录未成功：工号、密码或动态码有误，或该动态码已经用过。请等下一个动态码后重试。",
    errPasswordExpired: "密码已过期，须先修改密码（hallgate legal change-password）后再登录。",
    errWrongTerminalForRole: "您的岗位不能在法务终端登录。",
    errLocked: "登录失败次数过多，该工号已被暂时锁定，请在 {retry}后再试。",
    errLockedNoTime: "登录失败次数过多，该工号已被暂时锁定，请稍后再试。",
    errThrottled: "操作过于频繁，请在 {retry}后再试。",
    errThrottledNoTime: "操作过于频繁，请稍后再试。",
    errSession: "登录已失效（长时间无操作或已在别处退出），请重新登录。",
    errFourEyes: "您不能批准这项申请：申请由您（或您名下的其他账号）登记，须由另一名法务审批人批准（双人审核）。",
    errRole: "您的岗位不能办理此项操作。",
    errOutside: "超出审批范围，拒绝提供。",
    errLegalViaHall: "此终端不能办理法务业务，请到分公司法务部办理。",
    errPermission: "当前终端或岗位无权办理此项业务。",
    errCsrf: "页面已过期，请刷新页面后重试。",
    errNotFound: "没有这项申请。",
    errState: "申请当前状态为“{state}”，不能办理此项操作。",
    errChanged: "申请刚刚被他人办理过，请刷新后再看。",
    errLetterMissing: "来函扫描件在存档中找不到，不能提供数据。",
    errLetterCorrupt: "存档的来函扫描件已损坏（与登记时的 SHA-256 不符），不能提供数据。",
    errLapsed: "提供过程超时，申请已退回待审批状态，须重新审批。",
    errPrecondition: "当前不能办理此项操作。",
    errInvalid: "请检查填写的内容：",
    errInvalidPlain: "请检查填写的内容。",
    errUnavailable: "服务暂时不可用，请稍后再试。",
    errNetwork: "网络连接失败，请检查网络后重试。",
    errTimeout: "请求超时，请稍后再试。",
    errInternal: "系统出现错误，请稍后再试。",
    errNoFile: "请选择来函扫描件文件。",
    errFileTooLarge: "扫描件超过 8 MiB。",
    fieldBad: "{label}：{what}",
    "field:agency.kind": "机关类别",
    "field:agency.name": "机关全称",
    "field:agency.level": "机关级别",
    "field:letter.reference": "来函文号",
    "field:letter.date": "来函日期",
    "field:letter.content": "扫描件",
    "field:letter.media_type": "扫描件类型",
    "field:legal_basis": "法律依据",
    "field:case_number": "案件编号",
    "field:officers": "经办警官",
    "field:targets": "涉及号码",
    "field:categories": "数据类别",
    "field:window": "时间范围",
    "field:reason": "理由",
    "field:request_id": "申请编号",
    footer: "执法机关调取数据须严格依法办理；本工作台的每一步操作均记入审计记录。通信内容在任何情况下均不提供。",
    seconds: "{n} 秒",
    minutes: "{n} 分钟",
    hours: "{h} 小时",
    hoursMinutes: "{h} 小时 {m} 分钟",
  },
  en: {
    title: "Legal desk",
    signOut: "Sign out",
    navList: "Request register",
    navRegister: "Register a request",
    refusedTitle: "This terminal cannot use the legal desk",
    refusedText: "This page works only on the branch legal department's legal terminal. This certificate belongs to: {what}.",
    refusedNone: "no terminal certificate (the website)",
    refusedHint: "Requests from law-enforcement agencies are handled only by the branch legal department on its legal terminal, never at a hall or kiosk.",
    signInTitle: "Staff sign-in",
    signInHint: "Your staff id, password and the 6-digit code from your authenticator app.",
    staffId: "Staff id",
    password: "Password",
    totp: "Authenticator code",
    totpPlaceholder: "6 digits",
    signIn: "Sign in",
    signedOut: "You have signed out.",
    terminal: "Terminal {terminal}",
    who: "{staff} ({role})",
    "role:legal_officer": "legal officer",
    "role:legal_approver": "legal approver",
    "role:auditor": "auditor",
    listTitle: "Request register",
    refresh: "Refresh",
    fState: "State",
    fAgency: "Agency",
    fAgencyPlaceholder: "full name",
    fCase: "Case number",
    fDeadline: "Deadline",
    "deadline:any": "any",
    "deadline:pending": "approved, awaiting disclosure",
    "deadline:week": "lapsing within 7 days",
    "deadline:lapsed": "lapsed",
    applyFilters: "Filter",
    anyState: "any state",
    colId: "Request",
    colState: "State",
    colAgency: "Agency",
    colCase: "Case number",
    colRegistered: "Registered",
    colDeadline: "Approval lapses",
    more: "Load more",
    listLoading: "Loading…",
    listCount: "{count} requests shown",
    listCountFiltered: "{count} requests shown (the deadline filter applies to the requests loaded on this page)",
    listEmpty: "No request matches.",
    registerTitle: "Register a request",
    registerHint: "Enter what the agency's letter states and upload its scan. Another person, a legal approver, must approve it.",
    agency: "Agency",
    agencyKind: "Kind",
    agencyName: "Full name (as on the letter)",
    agencyLevel: "Level",
    letter: "Letter",
    letterReference: "Reference",
    letterDate: "Date of the letter",
    letterFile: "Scan (PDF, JPEG, PNG or TIFF, at most 8 MiB)",
    letterChosen: "{name}, {size}, {type}",
    theCase: "Case",
    caseNumber: "Case number",
    legalBasis: "Legal basis",
    officers: "Officers (one to ten)",
    officerName: "Name",
    officerBadge: "Badge number",
    addOfficer: "+ Add an officer",
    removeOfficer: "Remove",
    whatAsked: "What is asked for",
    targets: "Numbers",
    targetsPlaceholder: "one 11-digit number a line",
    categories: "Data",
    window: "Time window",
    windowFrom: "From (first day)",
    windowTo: "To (last day, included)",
    registerSubmit: "Register",
    registered: "Request {id} is registered and waits for another person, a legal approver.",
    backToList: "Back to the register",
    requestTitle: "Request {id}",
    "fact:agency": "Agency",
    "fact:case": "Case number",
    "fact:basis": "Legal basis",
    "fact:officers": "Officers",
    "fact:registered": "Registered",
    "fact:approved": "Approved",
    "fact:expires": "Approval lapses",
    "fact:reference": "Reference",
    "fact:date": "Date",
    "fact:type": "Type",
    "fact:size": "Size",
    "fact:sha256": "SHA-256",
    byAt: "{who}, {at}",
    officerLine: "{name} (badge {badge})",
    agencyLine: "{name} ({kind}, {level})",
    windowLine: "{start} to {end} (excluded)",
    countdown: "The approval lapses in {left} ({at}): fulfil it before then, or it needs a new approval.",
    countdownUrgent: "Only {left} left before the approval lapses ({at}).",
    lapsed: "The approval lapsed at {at}.",
    left: "{d} d {h} h",
    leftHours: "{h} h {m} min",
    leftMinutes: "{m} min",
    history: "History",
    historyLine: "{from} → {to}",
    historyBy: "{who} ({role})",
    "role:system": "system",
    decide: "Decide",
    reason: "Reason (required, kept in the history)",
    reasonPlaceholder: "e.g. letter checked with the agency by phone",
    approve: "Approve",
    reject: "Reject",
    fulfil: "Fulfil (signed package)",
    markInvalid: "Mark invalid",
    cancel: "Cancel (withdrawn)",
    done: "Request {id}: {state}.",
    letterFrame: "The agency's letter",
    letterShown: "The scan is shown above; its SHA-256 is the one registered.",
    letterNotHeld: "The API does not return the stored scan, only its SHA-256. Open the scan file you hold: it is checked against the registered SHA-256 and then shown.",
    letterMismatch: "The file chosen (SHA-256 {sha}) is not the registered letter; it is not shown.",
    letterNoFrame: "The server's security policy does not allow the scan to be shown in this page: download it to read it.",
    letterNotPdf: "The scan is not a PDF: download it to read it.",
    downloadLetter: "Download the scan",
    openLetter: "Open the scan to check…",
    delivery: "Delivery and verification",
    loadKey: "Load the gateway's public key…",
    downloadPackage: "Download the signed package",
    deliveryRunning: "Receiving the package: {chunks} chunks so far…",
    deliveryDone: "Package {id} received: {chunks} chunks, {calls} call details.",
    deliveryBroken: "The package did not arrive whole (no signed manifest): it was discarded and must not be used. The request is back awaiting approval.",
    manifestOnly: "This request was fulfilled before; a package is delivered once. Its signed manifest:",
    keyNote: "The signature is checked with the gateway's public key (on the host: hallgate legal public-key).",
    keyLoaded: "Public key loaded, key id {id}.",
    keyBad: "That file is not an Ed25519 public key (PEM).",
    verifiedAll: "Verified: the signature is valid and the content matches the manifest.",
    verifiedNoKey: "The content matches the manifest; the signature is not checked yet (load the gateway's public key).",
    verifyFailed: "Verification FAILED: {what}",
    "check:ok": "OK",
    "check:failed": "FAILED",
    "check:pending": "not checked",
    "check:signature": "Ed25519 signature (key id {id})",
    "check:key": "the public key is the one the manifest names",
    "check:content": "content_sha256 matches the records",
    "check:counts": "chunks, bytes and records per number match the manifest",
    "check:request": "request, case number and letter SHA-256 are this request's",
    "check:scope": "numbers, data and window are within the approval",
    "check:manifestOnly": "signed manifest (the records are not kept by the gateway)",
    packageHint: "The package is a tar file: unpack it and check it offline with hallgate legal verify DIR --public-key KEY.",
    "state:REQUEST_STATE_UNSPECIFIED": "unknown",
    "state:REQUEST_STATE_AWAITING_APPROVAL": "awaiting approval",
    "state:REQUEST_STATE_AWAITING_DISCLOSURE": "approved, awaiting disclosure",
    "state:REQUEST_STATE_DISCLOSING": "disclosing",
    "state:REQUEST_STATE_DISCLOSED": "disclosed",
    "state:REQUEST_STATE_DISCLOSURE_NOT_AVAILABLE": "no data available",
    "state:REQUEST_STATE_REJECTED": "rejected",
    "state:REQUEST_STATE_INVALID": "invalid",
    "state:REQUEST_STATE_CANCELLED": "cancelled",
    "state:REQUEST_STATE_EXPIRED": "approval lapsed",
    "kind:AGENCY_KIND_PUBLIC_SECURITY": "public security",
    "kind:AGENCY_KIND_PROCURATORATE": "procuratorate",
    "kind:AGENCY_KIND_STATE_SECURITY": "state security",
    "level:AGENCY_LEVEL_NATIONAL": "national",
    "level:AGENCY_LEVEL_PROVINCIAL": "provincial",
    "level:AGENCY_LEVEL_PREFECTURE": "prefecture",
    "level:AGENCY_LEVEL_COUNTY": "county (not accepted)",
    "level:AGENCY_LEVEL_TOWNSHIP": "township or station (not accepted)",
    choose: "choose",
    "cat:DATA_CATEGORY_SUBSCRIBER_INFO": "subscriber information",
    "cat:DATA_CATEGORY_CALL_DETAILS": "call details",
    "cat:DATA_CATEGORY_COMMUNICATION_CONTENT": "communication content (never)",
    errBadCredentials: "Sign-in failed: the staff id, password or code is wrong, or this code was already used. Wait for the next code and try again.",
    errPasswordExpired: "Your password has expired: change it first (hallgate legal change-password), then sign in.",
    errWrongTerminalForRole: "Your role may not sign in on the legal terminal.",
    errLocked: "Too many failed sign-ins: this staff id is locked. Try again in {retry}.",
    errLockedNoTime: "Too many failed sign-ins: this staff id is locked. Try again later.",
    errThrottled: "Too many requests. Try again in {retry}.",
    errThrottledNoTime: "Too many requests. Try again later.",
    errSession: "You are no longer signed in (idle too long, or signed out elsewhere). Please sign in again.",
    errFourEyes: "You may not approve this request: you (or another account of yours) registered it. Another legal approver must approve it (four eyes).",
    errRole: "Your role may not do this.",
    errOutside: "That is outside what was approved: refused.",
    errLegalViaHall: "This terminal cannot handle legal requests: the branch legal department does.",
    errPermission: "This terminal or role may not do this.",
    errCsrf: "This page has expired. Reload it and try again.",
    errNotFound: "There is no such request.",
    errState: "The request is {state}: this cannot be done now.",
    errChanged: "Someone else just changed this request. Refresh to see it.",
    errLetterMissing: "The letter's scan is missing from the store: nothing can be disclosed.",
    errLetterCorrupt: "The stored scan no longer matches its SHA-256: nothing can be disclosed.",
    errLapsed: "The fulfilment took too long: the request is back awaiting approval.",
    errPrecondition: "This cannot be done now.",
    errInvalid: "Please check:",
    errInvalidPlain: "Please check what you entered.",
    errUnavailable: "The service is unavailable at the moment. Try again later.",
    errNetwork: "No connection. Check the network and try again.",
    errTimeout: "The request timed out. Try again later.",
    errInternal: "Something went wrong. Try again later.",
    errNoFile: "Choose the scan of the letter.",
    errFileTooLarge: "The scan is larger than 8 MiB.",
    fieldBad: "{label}: {what}",
    "field:agency.kind": "Agency kind",
    "field:agency.name": "Agency name",
    "field:agency.level": "Agency level",
    "field:letter.reference": "Reference",
    "field:letter.date": "Date of the letter",
    "field:letter.content": "Scan",
    "field:letter.media_type": "Scan type",
    "field:legal_basis": "Legal basis",
    "field:case_number": "Case number",
    "field:officers": "Officers",
    "field:targets": "Numbers",
    "field:categories": "Data",
    "field:window": "Time window",
    "field:reason": "Reason",
    "field:request_id": "Request id",
    footer: "Requests from agencies are handled strictly by law; every step on this desk is audited. Communication content is never disclosed.",
    seconds: "{n} s",
    minutes: "{n} min",
    hours: "{h} h",
    hoursMinutes: "{h} h {m} min",
  },
};

const STORE_KEY = "hallgate-lang"; // shared with the self-service page: the language only
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

export function has(key) {
  return key in STRINGS[lang] || key in STRINGS["zh-CN"];
}

export function t(key, params = {}) {
  const s = STRINGS[lang][key] ?? STRINGS["zh-CN"][key] ?? key;
  return s.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

export function applyStatic(root = document) {
  document.documentElement.lang = lang;
  document.title = t("title");
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}

function makeFormats() {
  const locale = lang === "en" ? "en-GB" : "zh-CN";
  return {
    dateTime: new Intl.DateTimeFormat(locale, {
      timeZone: ZONE, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      hourCycle: "h23",
    }),
    number: new Intl.NumberFormat(locale),
  };
}

let formats = makeFormats();

export function formatDateTime(iso) {
  const d = new Date(iso);
  return iso && !Number.isNaN(d.getTime()) ? formats.dateTime.format(d) : "—";
}

export function formatCount(n) {
  return formats.number.format(Number(n) || 0);
}

export function formatBytes(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return formatCount(n) + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1024 ** 2).toFixed(1) + " MiB";
}

/** A time left, coarse: 29 天 23 小时 / 5 小时 12 分钟 / 42 分钟. */
export function formatLeft(ms) {
  const minutes = Math.max(0, Math.floor(ms / 60000));
  const d = Math.floor(minutes / 1440);
  const h = Math.floor((minutes % 1440) / 60);
  const m = minutes % 60;
  if (d > 0) return t("left", { d, h });
  if (h > 0) return t("leftHours", { h, m });
  return t("leftMinutes", { m: Math.max(1, m) });
}

export function formatWait(seconds) {
  const s = Math.max(1, Math.ceil(seconds));
  if (s < 60) return t("seconds", { n: s });
  const minutes = Math.ceil(s / 60);
  if (minutes < 60) return t("minutes", { n: minutes });
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return m ? t("hoursMinutes", { h, m }) : t("hours", { h });
}

/** The operator's "today" as YYYY-MM-DD, and a local date's midnight as an RFC 3339 instant. */
export function localDate(d = new Date()) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: ZONE, year: "numeric", month: "2-digit", day: "2-digit" })
    .format(d);
}

export function localMidnight(ymd, plusDays = 0) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(ymd || "")) return null;
  const [y, m, d] = ymd.split("-").map(Number);
  const utc = new Date(Date.UTC(y, m - 1, d + plusDays, 0, 0, 0) - 8 * 3600 * 1000); // Shanghai has no DST
  return utc.toISOString();
}
