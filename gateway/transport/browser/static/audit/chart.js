// Events per day as stacked bars, drawn as SVG with createElementNS (no library, no inline style:
// colours come from desk.css by class, s-<series>).

const SVG = "http://www.w3.org/2000/svg";
export const MAX_DAYS = 62;
const MIN_DAYS = 7;

function el(name, attrs = {}, text = "") {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text) e.textContent = text;
  return e;
}

function nextDay(day) {
  const d = new Date(day + "T00:00:00Z");
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

function prevDay(day) {
  const d = new Date(day + "T00:00:00Z");
  d.setUTCDate(d.getUTCDate() - 1);
  return d.toISOString().slice(0, 10);
}

/** {days: [...], series: [...], counts: {day: {series: n}}, capped} from (day, series) pairs: every
 * day between the first and the last (at most MAX_DAYS, the newest), empty days included. */
export function bucket(pairs) {
  const counts = {};
  const seen = new Set();
  let first = "";
  let last = "";
  for (const [day, series] of pairs) {
    if (!day) continue;
    (counts[day] ||= {})[series] = (counts[day][series] || 0) + 1;
    seen.add(series);
    if (!first || day < first) first = day;
    if (!last || day > last) last = day;
  }
  const days = [];
  for (let d = first; d && d <= last; d = nextDay(d)) days.push(d);
  while (days.length && days.length < MIN_DAYS) days.unshift(prevDay(days[0])); // a week at least: a day among days
  const capped = days.length > MAX_DAYS;
  return { days: capped ? days.slice(-MAX_DAYS) : days, series: [...seen].sort(), counts, capped };
}

/** Draw into `host` (emptied first). `label(series)` names a series; `title` is the chart's name. */
export function drawChart(host, data, { label, title, order = [] }) {
  host.replaceChildren();
  const series = [...order.filter((s) => data.series.includes(s)), ...data.series.filter((s) => !order.includes(s))];
  const W = 960;
  const H = 200;
  const left = 44;
  const right = 12;
  const top = 12;
  const bottom = 32;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const totals = data.days.map((d) => series.reduce((n, s) => n + ((data.counts[d] || {})[s] || 0), 0));
  const max = Math.max(1, ...totals);
  const step = niceStep(max);
  const top_ = Math.ceil(max / step) * step;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, class: "chart-svg",
    preserveAspectRatio: "xMidYMid meet" });
  svg.append(el("title", {}, title));
  for (let v = 0; v <= top_; v += step) {
    const y = top + plotH - (v / top_) * plotH;
    svg.append(el("line", { x1: left, x2: W - right, y1: y, y2: y, class: "grid-line" }));
    svg.append(el("text", { x: left - 6, y: y + 4, class: "axis-label", "text-anchor": "end" }, String(v)));
  }
  const slot = plotW / Math.max(1, data.days.length);
  const barW = Math.max(2, Math.min(40, slot * 0.7));
  const labelEvery = Math.ceil(data.days.length / 12);
  data.days.forEach((day, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    let y = top + plotH;
    const g = el("g", { class: "bar", "data-day": day, "data-total": totals[i] });
    for (const s of series) {
      const n = (data.counts[day] || {})[s] || 0;
      if (!n) continue;
      const h = (n / top_) * plotH;
      y -= h;
      const r = el("rect", { x, y, width: barW, height: h, class: `seg s-${s}`, "data-series": s, "data-count": n });
      r.append(el("title", {}, `${day} ${label(s)}: ${n}`));
      g.append(r);
    }
    svg.append(g);
    if (i % labelEvery === 0) {
      svg.append(el("text", { x: left + i * slot + slot / 2, y: H - bottom + 20, class: "axis-label",
        "text-anchor": "middle" }, day.slice(5)));
    }
  });
  svg.append(el("line", { x1: left, x2: W - right, y1: top + plotH, y2: top + plotH, class: "axis" }));
  host.append(svg);
  const legend = document.createElement("ul");
  legend.className = "legend";
  for (const s of series) {
    const li = document.createElement("li");
    li.dataset.series = s;
    const swatch = el("svg", { viewBox: "0 0 10 10", class: "swatch", "aria-hidden": "true" });
    swatch.append(el("rect", { x: 0, y: 0, width: 10, height: 10, class: `s-${s}` }));
    const n = data.days.reduce((acc, d) => acc + ((data.counts[d] || {})[s] || 0), 0);
    li.append(swatch, document.createTextNode(`${label(s)} ${n}`));
    legend.append(li);
  }
  host.append(legend);
}

function niceStep(max) {
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(Math.max(1, raw)));
  for (const m of [1, 2, 5, 10]) if (m * mag >= raw) return Math.max(1, m * mag);
  return 10 * mag;
}
