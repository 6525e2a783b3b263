// The queue: the principal's tickets, newest first, filtered, paged; kept live by WatchEvents.

import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Level, Status, type Ticket } from "./gen/doorstep/v1/ticket_pb";
import { Code, describe, isCode, tickets } from "./api";
import { fill, h } from "./dom";
import { countdown, date, deadlineState, levelName, nameOf, OPEN, runningDeadline, short, statusName } from "./fmt";
import { t } from "./strings";

const PAGE = 50;
/** The most tickets one filter loads (1000 a call); past it the console asks for narrower filters. */
const MAX_LOADED = 5000;
/** More changed tickets at once than this are read as a new list. */
const BURST = 20;

export interface Filter {
  status: string; // "", "open" or a Status name
  level: string; // "" or a Level name
  unit: string;
  overdue: boolean;
  breached: boolean;
  dueBefore: string; // datetime-local value
}

const EMPTY: Filter = { status: "open", level: "", unit: "", overdue: false, breached: false, dueBefore: "" };

/** Newest first; tickets registered in the same millisecond by id, which also grows with time. */
function newerFirst(a: Ticket, b: Ticket): number {
  const at = date(a.createdAt)?.getTime() ?? 0;
  const bt = date(b.createdAt)?.getTime() ?? 0;
  return bt - at || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

function statuses(filter: Filter): Status[] {
  if (filter.status === "open") return OPEN;
  if (filter.status === "") return [];
  return [Status[filter.status as keyof typeof Status]];
}

/** The filter as the service applies it, for tickets that changed after the list was loaded. */
function matches(ticket: Ticket, filter: Filter): boolean {
  const wanted = statuses(filter);
  if (wanted.length && !wanted.includes(ticket.status)) return false;
  if (filter.level && Level[ticket.level] !== filter.level) return false;
  if (filter.unit && ticket.leadUnit !== filter.unit && !ticket.coHandlers.some((c) => c.unit === filter.unit)) {
    return false;
  }
  if (filter.overdue && !ticket.overdue) return false;
  if (filter.breached && !ticket.breached) return false;
  if (filter.dueBefore) {
    // As the service reads it: the resolve deadline.
    const due = date(ticket.resolveDueAt)?.getTime();
    if (due === undefined || due >= new Date(filter.dueBefore).getTime()) return false;
  }
  return true;
}

export class Queue {
  readonly root = h("section", { class: "queue" });
  private filter: Filter = { ...EMPTY };
  private all: Ticket[] = [];
  private truncated = false;
  private offset = 0;
  private loading = 0;
  private readonly table = h("tbody");
  private readonly footer = h("div", { class: "pager" });
  private readonly message = h("div", { class: "message", role: "status" });
  private readonly form: HTMLFormElement;
  private rows = new Map<string, { state: HTMLElement; left: HTMLElement; ticket: Ticket }>();

  constructor(
    private readonly open: (id: string) => void,
    units: string[],
  ) {
    this.form = this.filterForm(units);
    fill(
      this.root,
      this.form,
      this.message,
      h(
        "table",
        { class: "tickets" },
        h("thead", {}, h("tr", {}, t.queue.cols.map((c) => h("th", {}, c)))),
        this.table,
      ),
      this.footer,
    );
    setInterval(() => this.tick(), 1000);
  }

  private filterForm(units: string[]): HTMLFormElement {
    const status = h(
      "select",
      { name: "status", "aria-label": t.filter.status },
      h("option", { value: "open" }, t.filter.statusOpen),
      h("option", { value: "" }, t.filter.statusAll),
      Object.keys(t.status).map((s) => h("option", { value: s }, t.status[s])),
    );
    const level = h(
      "select",
      { name: "level", "aria-label": t.filter.level },
      h("option", { value: "" }, t.filter.levelAll),
      Object.keys(t.level).map((l) => h("option", { value: l }, t.level[l])),
    );
    const form = h(
      "form",
      {
        class: "filters",
        onsubmit: (e: Event) => {
          e.preventDefault();
          this.readFilter();
          void this.load();
        },
      },
      h("label", {}, t.filter.status, status),
      h("label", {}, t.filter.level, level),
      h(
        "label",
        {},
        t.filter.unit,
        h("input", { name: "unit", list: "units", size: 28, autocomplete: "off" }),
        h("datalist", { id: "units" }, units.map((u) => h("option", { value: u }))),
      ),
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "overdue" }), t.filter.overdue),
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "breached" }), t.filter.breached),
      h("label", {}, t.filter.dueBefore, h("input", { type: "datetime-local", name: "dueBefore" })),
      h("button", { type: "submit" }, t.filter.apply),
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          onclick: () => {
            form.reset();
            this.readFilter();
            void this.load();
          },
        },
        t.filter.reset,
      ),
    );
    return form;
  }

  private readFilter(): void {
    const data = new FormData(this.form);
    this.filter = {
      status: String(data.get("status") ?? ""),
      level: String(data.get("level") ?? ""),
      unit: String(data.get("unit") ?? "").trim(),
      overdue: data.has("overdue"),
      breached: data.has("breached"),
      dueBefore: String(data.get("dueBefore") ?? ""),
    };
  }

  /** Reads the whole filtered list again (at most MAX_LOADED), keeping the page where it was. */
  async load(): Promise<void> {
    const generation = ++this.loading;
    const filter = this.filter;
    const found: Ticket[] = [];
    let pageToken = "";
    try {
      do {
        const page = await tickets.listTickets({
          statuses: statuses(filter),
          levels: filter.level ? [Level[filter.level as keyof typeof Level]] : [],
          unit: filter.unit,
          overdueOnly: filter.overdue,
          breachedOnly: filter.breached,
          dueBefore: filter.dueBefore ? timestampFromDate(new Date(filter.dueBefore)) : undefined,
          pageSize: 1000,
          pageToken,
        });
        found.push(...page.tickets);
        pageToken = page.nextPageToken;
      } while (pageToken && found.length < MAX_LOADED);
    } catch (e) {
      if (generation === this.loading) this.message.textContent = describe(e);
      return;
    }
    if (generation !== this.loading) return;
    this.truncated = pageToken !== "";
    this.all = found.sort(newerFirst);
    this.message.textContent = this.truncated ? t.queue.truncated(found.length) : "";
    this.offset = Math.min(this.offset, Math.max(0, this.all.length - 1));
    this.render();
  }

  /** Tickets the event stream says changed: read each again and place, replace or drop it. */
  async changed(ids: Set<string>): Promise<void> {
    // A burst (an escalation wave, say) is one read of the list, not a call per ticket: the token's
    // rate limit is shared with everything else the console does.
    if (ids.size > BURST) return this.load();
    for (const id of ids) {
      let ticket: Ticket | null = null;
      try {
        ticket = await tickets.getTicket({ id });
      } catch (e) {
        if (!isCode(e, Code.NotFound)) continue;
      }
      const at = this.all.findIndex((x) => x.id === id);
      if (at >= 0) this.all.splice(at, 1);
      if (ticket && matches(ticket, this.filter)) {
        let place = this.all.findIndex((x) => newerFirst(ticket, x) < 0);
        if (place < 0) place = this.all.length;
        this.all.splice(place, 0, ticket);
        // A ticket placed above the page being read moves the page with it: the rows stay put.
        if (at < 0 && this.offset > 0 && place < this.offset) this.offset++;
      } else if (at >= 0 && at < this.offset) {
        this.offset--;
      }
    }
    this.render();
  }

  /** Shows the page again (after names arrived, say). */
  render(): void {
    const now = Date.now();
    const shown = this.all.slice(this.offset, this.offset + PAGE);
    this.rows.clear();
    fill(
      this.table,
      shown.length === 0 ? h("tr", {}, h("td", { colspan: 9, class: "empty" }, t.queue.empty)) : null,
      shown.map((ticket) => {
        const state = h("td", {});
        const left = h("td", { class: "countdown" });
        this.rows.set(ticket.id, { state, left, ticket });
        const running = runningDeadline(ticket);
        const row = h(
          "tr",
          {
            "data-id": ticket.id,
            tabindex: 0,
            onclick: () => this.open(ticket.id),
            onkeydown: (e: Event) => {
              if ((e as KeyboardEvent).key === "Enter") this.open(ticket.id);
            },
          },
          h("td", { class: "nowrap" }, short(ticket.createdAt)),
          h("td", { class: `level level-${Level[ticket.level]}` }, levelName(ticket.level)),
          h("td", { class: "nowrap" }, statusName(ticket.status)),
          h("td", { class: "content", title: ticket.content }, ticket.content),
          h("td", { class: "node", title: `${ticket.address} ${ticket.node}`.trim() }, ticket.address || nameOf(ticket.node)),
          h("td", { class: "unit", title: ticket.leadUnit }, ticket.leadUnit ? nameOf(ticket.leadUnit) : "—"),
          h("td", { class: "nowrap" }, running ? `${t.clock[running.clock]} ${short(ticket[running.clock === "ACKNOWLEDGE" ? "acknowledgeDueAt" : "resolveDueAt"])}` : "—"),
          state,
          left,
        );
        return row;
      }),
    );
    this.paint(now);
    const first = this.all.length ? this.offset + 1 : 0;
    const last = Math.min(this.offset + PAGE, this.all.length);
    fill(
      this.footer,
      h("span", {}, t.queue.count(this.all.length, `${first}–${last}`)),
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          disabled: this.offset === 0,
          onclick: () => {
            this.offset = Math.max(0, this.offset - PAGE);
            this.render();
          },
        },
        t.queue.prev,
      ),
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          disabled: this.offset + PAGE >= this.all.length,
          onclick: () => {
            this.offset += PAGE;
            this.render();
          },
        },
        t.queue.next,
      ),
    );
  }

  private paint(now: number): void {
    for (const { state, left, ticket } of this.rows.values()) {
      const kind = deadlineState(ticket, now);
      state.className = `state state-${kind}`;
      state.textContent = t.deadlineState[kind];
      left.textContent = countdown(ticket, now);
    }
  }

  private tick(): void {
    if (this.root.isConnected) this.paint(Date.now());
  }
}
