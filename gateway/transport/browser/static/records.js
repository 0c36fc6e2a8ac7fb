// A virtual list: every record is kept in memory, but only the rows in (or near) the viewport
// exist in the DOM, each at a fixed height, over a spacer as tall as all rows together. A month
// of 20,000 records scrolls like a month of 20.

const OVERSCAN = 6; // rows rendered above and below the visible ones
const MAX_ROWS = 180; // the DOM never holds more rows than this, whatever the viewport's height

export class VirtualList {
  /**
   * @param viewport the scrolling element (fixed height in CSS)
   * @param spacer its only child; rows are placed inside it
   * @param fill (rowElement, record, index) → fills a row (created by `create`)
   * @param create () → a new, empty row element
   */
  constructor(viewport, spacer, { create, fill }) {
    this.viewport = viewport;
    this.spacer = spacer;
    this.create = create;
    this.fill = fill;
    this.items = [];
    this.rows = []; // the pool: rows in the DOM
    this.rowHeight = 40;
    this.pending = false;
    this.generation = 0; // bumps on clear/refresh: every row is refilled
    viewport.addEventListener("scroll", () => this.schedule(), { passive: true });
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(() => this.refresh()).observe(viewport);
    }
  }

  get length() {
    return this.items.length;
  }

  /** Re-read the row height (a CSS variable) and refill every row (e.g. after a language switch). */
  refresh() {
    const h = parseFloat(getComputedStyle(this.viewport).getPropertyValue("--row-h"));
    if (h > 0) this.rowHeight = h;
    this.generation++;
    this.schedule();
  }

  append(records) {
    if (!records.length) return;
    for (const r of records) this.items.push(r);
    this.schedule();
  }

  /** Forget every record and remove every row from the DOM now (not on the next frame). */
  clear() {
    this.items = [];
    for (const row of this.rows) row.remove();
    this.rows = [];
    this.spacer.style.height = "0px";
    this.viewport.scrollTop = 0;
    this.generation++;
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  render() {
    const n = this.items.length;
    const h = this.rowHeight;
    this.spacer.style.height = n * h + "px";
    const top = this.viewport.scrollTop;
    const visible = Math.ceil(this.viewport.clientHeight / h) + 1;
    const first = Math.max(0, Math.floor(top / h) - OVERSCAN);
    const last = Math.min(n, first + Math.min(MAX_ROWS, visible + 2 * OVERSCAN));
    const want = last - first;
    while (this.rows.length > want) this.rows.pop().remove();
    while (this.rows.length < want) {
      const row = this.create();
      this.spacer.appendChild(row);
      this.rows.push(row);
    }
    for (let j = 0; j < want; j++) {
      const i = first + j;
      const row = this.rows[j];
      if (row.dataset.index !== String(i) || row.dataset.generation !== String(this.generation)) {
        this.fill(row, this.items[i], i);
        row.dataset.index = String(i);
        row.dataset.generation = String(this.generation);
        row.style.transform = `translateY(${i * h}px)`;
      }
    }
  }
}
