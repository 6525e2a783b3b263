// The district view for supervisors and reporters: SLA figures of a node by child node over a window,
// and the weekly chart (tickets received, on-time rate).

import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { GroupBy, Period, type SlaRow } from "./gen/doorstep/v1/report_pb";
import { admin, describe, reports, type Principal } from "./api";
import { fill, h, s } from "./dom";
import { when } from "./fmt";
import { t } from "./strings";

const DAY = 86_400_000;
const isoDay = (d: Date) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
const rate = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : "—");

export class District {
  readonly root = h("section", { class: "district" });
  private readonly out = h("div", {});
  private readonly form: HTMLFormElement;
  private names = new Map<string, string>();

  constructor(private readonly principal: Principal) {
    const today = new Date();
    this.form = h(
      "form",
      {
        class: "filters",
        onsubmit: (e: Event) => {
          e.preventDefault();
          void this.load();
        },
      },
      h("label", {}, t.district.node, h("select", { name: "node" })),
      h("label", {}, t.district.from, h("input", { type: "date", name: "from", value: isoDay(new Date(today.getTime() - 27 * DAY)), required: true })),
      h("label", {}, t.district.to, h("input", { type: "date", name: "to", value: isoDay(today), required: true })),
      h("button", { type: "submit" }, t.district.show),
    );
    fill(this.root, h("h2", {}, t.district.heading), this.form, this.out);
  }

  /** The principal's node and the nodes under it, down two levels, to choose from. */
  async start(): Promise<void> {
    try {
      let root = this.principal.scope;
      if (!root) root = (await admin.listNodes({ parent: "" })).nodes[0]?.code ?? "";
      const self = await admin.getNode({ code: root });
      const below = await admin.listNodes({ parent: root, recursive: true });
      const choices = [self, ...below.nodes].filter((n) => n.code.split("/").length <= root.split("/").length + 1);
      for (const n of [self, ...below.nodes]) this.names.set(n.code, n.name);
      fill(this.form.elements.namedItem("node") as HTMLSelectElement, choices.map((n) => h("option", { value: n.code }, n.name)));
    } catch (e) {
      fill(this.out, h("p", { class: "notice error" }, describe(e)));
      return;
    }
    await this.load();
  }

  private async load(): Promise<void> {
    const data = new FormData(this.form);
    const node = String(data.get("node"));
    const from = new Date(`${data.get("from")}T00:00:00`);
    const to = new Date(new Date(`${data.get("to")}T00:00:00`).getTime() + DAY);
    const window = { node, from: timestampFromDate(from), to: timestampFromDate(to) };
    try {
      const [children, weeks] = await Promise.all([
        reports.getSlaReport({ ...window, groupBy: GroupBy.CHILD_NODE }),
        reports.getSlaReport({ ...window, groupBy: GroupBy.PERIOD, period: Period.WEEK }),
      ]);
      fill(
        this.out,
        h("p", { class: "muted" }, t.district.asOf(when(children.asOf))),
        h(
          "table",
          { class: "plain figures" },
          h("thead", {}, h("tr", {}, t.district.cols.map((c) => h("th", {}, c)))),
          h(
            "tbody",
            {},
            children.rows.map((r) =>
              h(
                "tr",
                {},
                h("td", {}, r.key === node ? `${this.names.get(r.key) ?? r.key}${t.district.own}` : (this.names.get(r.key) ?? r.key)),
                [r.received, r.resolved].map((n) => h("td", { class: "num" }, String(n))),
                [r.onTimeRate, r.acknowledgeRate, r.resolutionRate, r.satisfactionRate].map((x) => h("td", { class: "num" }, rate(x))),
                [r.overdueNow, r.breachedNow].map((n) => h("td", { class: "num" }, String(n))),
              ),
            ),
          ),
        ),
        h("h3", {}, t.district.weekly),
        chart(weeks.rows),
      );
    } catch (e) {
      fill(this.out, h("p", { class: "notice error" }, describe(e)));
    }
  }
}

/** Bars of tickets received per week, with the on-time rate as a line on a 0–100% scale. */
function chart(rows: SlaRow[]): Node {
  if (rows.length === 0) return h("p", { class: "muted" }, t.district.noData);
  const width = 900;
  const height = 220;
  const pad = { left: 44, right: 44, top: 16, bottom: 40 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const max = Math.max(1, ...rows.map((r) => Number(r.received)));
  const step = plotW / rows.length;
  const y = (n: number) => pad.top + plotH - (n / max) * plotH;
  const yRate = (x: number) => pad.top + plotH - x * plotH;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": t.district.weekly });
  svg.append(s("line", { x1: pad.left, y1: pad.top + plotH, x2: width - pad.right, y2: pad.top + plotH, class: "axis" }));
  svg.append(s("text", { x: pad.left - 6, y: pad.top + 4, "text-anchor": "end", class: "tick" }, String(max)));
  svg.append(s("text", { x: width - pad.right + 6, y: pad.top + 4, class: "tick" }, "100%"));
  const points: string[] = [];
  rows.forEach((r, i) => {
    const x = pad.left + i * step;
    const n = Number(r.received);
    svg.append(
      s("rect", { x: x + step * 0.15, y: y(n), width: step * 0.7, height: pad.top + plotH - y(n), class: "bar" }, s("title", {}, `${r.key} ${t.district.received} ${n}`)),
    );
    svg.append(s("text", { x: x + step / 2, y: height - pad.bottom + 16, "text-anchor": "middle", class: "tick" }, r.key.slice(5)));
    if (Number.isFinite(r.onTimeRate)) {
      points.push(`${x + step / 2},${yRate(r.onTimeRate)}`);
      svg.append(s("circle", { cx: x + step / 2, cy: yRate(r.onTimeRate), r: 3, class: "rate-point" }, s("title", {}, `${r.key} ${t.district.onTime} ${rate(r.onTimeRate)}`)));
    }
  });
  if (points.length) svg.append(s("polyline", { points: points.join(" "), class: "rate" }));
  const legend = h(
    "div",
    { class: "legend" },
    h("span", { class: "key bar-key" }),
    t.district.received,
    h("span", { class: "key rate-key" }),
    t.district.onTime,
  );
  return h("div", {}, svg, legend);
}
