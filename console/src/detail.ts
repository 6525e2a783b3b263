// One ticket: its fields (the caller as the service shows it to this role), co-handlers, deadlines with
// their rules, the timeline, and the actions this role may take in the ticket's status.

import { Clock, EventKind, Level, Satisfaction, Status, type Ticket, type Timeline } from "./gen/doorstep/v1/ticket_pb";
import { Channel } from "./gen/doorstep/v1/ticket_pb";
import { Code, describe, isCode, tickets, type Principal } from "./api";
import { fill, h } from "./dom";
import { FINISHED, OPEN, countdown, deadlineState, levelName, nameOf, span, statusName, when } from "./fmt";
import { t } from "./strings";

type Role = Principal["role"];
type Values = Record<string, string>;

interface Field {
  name: string;
  label: string;
  kind: "text" | "textarea" | "number" | "select" | "check" | "unit";
  required?: boolean;
  options?: [string, string][];
}

interface ActionDef {
  key: string;
  roles: Role[];
  when: (ticket: Ticket, timeline: Timeline, principal: Principal) => boolean;
  fields: Field[];
  run: (ticket: Ticket, v: Values) => Promise<Ticket>;
}

const is = (...statuses: Status[]) => (ticket: Ticket) => statuses.includes(ticket.status);
const open = (ticket: Ticket) => OPEN.includes(ticket.status);
const reason: Field = { name: "reason", label: t.field.reason, kind: "textarea", required: true };
const optionalReason: Field = { name: "reason", label: t.field.reasonOptional, kind: "textarea" };
const unit: Field = { name: "unit", label: t.field.unit, kind: "unit", required: true };

/** An extension request not yet decided. */
function extensionPending(timeline: Timeline): boolean {
  let pending = false;
  for (const e of timeline.events) {
    if (e.kind === EventKind.EXTENSION_REQUESTED) pending = true;
    if (e.kind === EventKind.EXTENSION_APPROVED || e.kind === EventKind.EXTENSION_REJECTED) pending = false;
  }
  return pending;
}

const base = (ticket: Ticket) => ({ id: ticket.id, version: ticket.version });

/** Every action of the lifecycle; the service has the last word (its refusal is shown as it says). */
const ACTIONS: ActionDef[] = [
  {
    key: "dispatch",
    roles: ["dispatcher", "admin"],
    when: is(Status.NEW, Status.RETURNED, Status.DISPATCHED),
    fields: [{ name: "leadUnit", label: t.field.leadUnit, kind: "text" }, optionalReason],
    run: (x, v) => tickets.dispatchTicket({ ...base(x), leadUnit: v.leadUnit, reason: v.reason }),
  },
  {
    key: "acknowledge",
    roles: ["unit", "admin"],
    when: is(Status.DISPATCHED),
    fields: [unit],
    run: (x, v) => tickets.acknowledgeTicket({ ...base(x), unit: v.unit }),
  },
  {
    key: "return",
    roles: ["unit", "admin"],
    when: is(Status.DISPATCHED, Status.IN_PROGRESS),
    fields: [unit, reason],
    run: (x, v) => tickets.returnTicket({ ...base(x), unit: v.unit, reason: v.reason }),
  },
  {
    key: "whistle",
    roles: ["dispatcher", "unit", "admin"],
    when: is(Status.IN_PROGRESS),
    fields: [{ name: "units", label: t.field.units, kind: "text", required: true }, optionalReason],
    run: (x, v) =>
      tickets.whistleTicket({
        ...base(x),
        units: v.units.split(/[,，\s]+/).filter(Boolean),
        reason: v.reason,
      }),
  },
  {
    key: "reportIn",
    roles: ["unit", "admin"],
    when: (x, _, p) => open(x) && x.coHandlers.some((c) => !c.reportedInAt && (p.role === "admin" || c.unit === p.unit)),
    fields: [unit],
    run: (x, v) => tickets.reportIn({ ...base(x), unit: v.unit }),
  },
  {
    key: "suspend",
    roles: ["dispatcher", "supervisor", "admin"],
    when: is(Status.IN_PROGRESS),
    fields: [reason],
    run: (x, v) => tickets.suspendTicket({ ...base(x), reason: v.reason }),
  },
  {
    key: "resume",
    roles: ["dispatcher", "supervisor", "admin"],
    when: is(Status.SUSPENDED),
    fields: [optionalReason],
    run: (x, v) => tickets.resumeTicket({ ...base(x), reason: v.reason }),
  },
  {
    key: "requestExtension",
    roles: ["unit", "admin"],
    when: (x, tl) => is(Status.IN_PROGRESS, Status.SUSPENDED)(x) && !extensionPending(tl),
    fields: [{ name: "days", label: t.field.days, kind: "number", required: true }, reason],
    run: (x, v) => tickets.requestExtension({ ...base(x), extraWorkingDays: Number(v.days), reason: v.reason }),
  },
  {
    key: "decideExtension",
    roles: ["supervisor", "admin"],
    when: (x, tl) => open(x) && extensionPending(tl),
    fields: [
      {
        name: "approve",
        label: t.field.decision,
        kind: "select",
        options: [
          ["yes", t.field.approve],
          ["no", t.field.reject],
        ],
      },
      optionalReason,
    ],
    run: (x, v) => tickets.decideExtension({ ...base(x), approve: v.approve === "yes", reason: v.reason }),
  },
  {
    key: "resolve",
    roles: ["unit", "admin"],
    when: is(Status.IN_PROGRESS),
    fields: [{ name: "resolution", label: t.field.resolution, kind: "textarea", required: true }],
    run: (x, v) => tickets.resolveTicket({ ...base(x), resolution: v.resolution }),
  },
  {
    key: "callback",
    roles: ["intake", "dispatcher", "admin"],
    when: is(Status.RESOLVED),
    fields: [
      {
        name: "satisfaction",
        label: t.field.satisfaction,
        kind: "select",
        options: Object.entries(t.satisfaction),
      },
      { name: "comment", label: t.field.comment, kind: "textarea" },
      { name: "matterSolved", label: t.field.matterSolved, kind: "check" },
    ],
    run: (x, v) =>
      tickets.recordCallback({
        ...base(x),
        satisfaction: Satisfaction[v.satisfaction as keyof typeof Satisfaction],
        comment: v.comment,
        matterSolved: v.matterSolved === "on",
      }),
  },
  {
    key: "urge",
    roles: ["supervisor", "admin"],
    when: open,
    fields: [reason],
    run: (x, v) => tickets.urgeTicket({ ...base(x), reason: v.reason }),
  },
  {
    key: "supervise",
    roles: ["supervisor", "admin"],
    when: open,
    fields: [reason],
    run: (x, v) => tickets.superviseTicket({ ...base(x), reason: v.reason }),
  },
  {
    key: "escalate",
    roles: ["supervisor", "admin"],
    when: (x) => is(Status.NEW, Status.RETURNED, Status.DISPATCHED, Status.IN_PROGRESS)(x) && x.level !== Level.MAJOR_RISK,
    fields: [reason],
    run: (x, v) => tickets.escalateTicket({ ...base(x), reason: v.reason }),
  },
  {
    key: "reclassify",
    roles: ["dispatcher", "supervisor", "admin"],
    when: is(Status.NEW, Status.RETURNED, Status.DISPATCHED, Status.IN_PROGRESS),
    fields: [{ name: "level", label: t.field.level, kind: "select", options: Object.entries(t.level) }, reason],
    run: (x, v) => tickets.reclassifyTicket({ ...base(x), level: Level[v.level as keyof typeof Level], reason: v.reason }),
  },
  {
    key: "merge",
    roles: ["dispatcher", "admin"],
    when: open,
    fields: [{ name: "intoId", label: t.field.intoId, kind: "text", required: true }, optionalReason],
    run: (x, v) => tickets.mergeTicket({ ...base(x), intoId: v.intoId, reason: v.reason }),
  },
  {
    key: "cancel",
    roles: ["dispatcher", "admin"],
    when: open,
    fields: [reason],
    run: (x, v) => tickets.cancelTicket({ ...base(x), reason: v.reason }),
  },
  {
    key: "note",
    roles: ["intake", "dispatcher", "unit", "supervisor", "admin"],
    when: () => true,
    fields: [{ name: "reason", label: t.field.note, kind: "textarea", required: true }],
    run: (x, v) => tickets.addNote({ ...base(x), reason: v.reason }),
  },
];

export class Detail {
  readonly root = h("section", { class: "detail" });
  private timeline: Timeline | null = null;
  private readonly notice = h("div", { class: "notice", role: "status" });
  private readonly body = h("div", {});
  private readonly state = h("span", {});
  private readonly left = h("span", { class: "countdown" });
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    readonly id: string,
    private readonly principal: Principal,
    back: () => void,
  ) {
    fill(
      this.root,
      h("div", { class: "detail-head" }, h("button", { type: "button", class: "secondary", onclick: back }, t.detail.back), h("h2", {}, t.detail.heading)),
      this.notice,
      this.body,
    );
    this.timer = setInterval(() => this.paint(), 1000);
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** Reads the ticket again and shows it; `live`: because the event stream said it changed, when a
   * form being filled in is kept (its submission then meets the version conflict, which says so). */
  async load(live = false): Promise<void> {
    let timeline: Timeline;
    try {
      timeline = await tickets.getTimeline({ id: this.id });
    } catch (e) {
      this.notice.className = "notice error";
      this.notice.textContent = describe(e);
      return;
    }
    if (live && this.root.querySelector(".action-form")) {
      this.notice.className = "notice";
      this.notice.textContent = t.detail.changed;
      return;
    }
    this.timeline = timeline;
    this.render();
  }

  private paint(): void {
    const ticket = this.timeline?.ticket;
    if (!ticket) return;
    const kind = deadlineState(ticket, Date.now());
    this.state.parentElement?.toggleAttribute("hidden", kind === "none");
    this.state.className = `state state-${kind}`;
    this.state.textContent = t.deadlineState[kind];
    this.left.textContent = countdown(ticket, Date.now());
  }

  private render(): void {
    const timeline = this.timeline;
    const ticket = timeline?.ticket;
    if (!timeline || !ticket) return;
    const f = t.detail.fields;
    const caller = ticket.caller;
    const hidden = h("span", { class: "muted" }, t.detail.fields.hidden);
    const rows: [string, Node | string][] = [
      [f.id, ticket.id],
      [f.externalRef, `${t.channel[Channel[ticket.source]] ?? ""} ${ticket.externalRef}`],
      [f.caller, caller?.name ? caller.name : hidden.cloneNode(true)],
      [f.phone, caller?.phone ? caller.phone : hidden.cloneNode(true)],
      [f.category, ticket.category],
      [f.content, ticket.content],
      [f.address, ticket.address || "—"],
      [f.node, `${nameOf(ticket.node)}（${ticket.node}）`],
      [f.level, levelName(ticket.level)],
      [f.status, statusName(ticket.status)],
      [f.leadUnit, ticket.leadUnit ? `${nameOf(ticket.leadUnit)}（${ticket.leadUnit}）` : "—"],
      [f.caseOwner, ticket.caseOwner || "—"],
      [f.createdAt, when(ticket.createdAt, true)],
      [f.updatedAt, when(ticket.updatedAt, true)],
      [f.acknowledgeDueAt, when(ticket.acknowledgeDueAt, true)],
      [f.resolveDueAt, when(ticket.resolveDueAt, true)],
      [f.warnAt, when(ticket.warnAt, true)],
      [f.escalations, String(ticket.escalations)],
      [f.extensions, String(ticket.extensions)],
      [f.version, String(ticket.version)],
    ];
    if (ticket.mergedInto) rows.push([f.mergedInto, ticket.mergedInto]);
    if (caller?.confidential) rows.push([f.confidential, "✓"]);
    fill(
      this.body,
      h(
        "div",
        { class: "columns" },
        h(
          "div",
          { class: "fields" },
          h("div", { class: "deadline-now" }, this.state, " ", this.left),
          h("dl", {}, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k }, v)])),
        ),
        h("div", { class: "side" }, this.actions(ticket, timeline)),
      ),
      h("h3", {}, t.detail.coHandlers),
      ticket.coHandlers.length === 0
        ? h("p", { class: "muted" }, t.detail.noCoHandlers)
        : table(
            t.detail.coHandlerCols,
            ticket.coHandlers.map((c) => [c.unit, when(c.calledAt), when(c.reportInDueAt), when(c.reportedInAt)]),
          ),
      h("h3", {}, t.detail.deadlines),
      table(
        t.detail.deadlineCols,
        timeline.deadlines.map((d) => [
          t.clock[Clock[d.clock]] ?? Clock[d.clock],
          when(d.dueAt, true),
          when(d.startedAt, true),
          d.rule,
          d.pausedSeconds > 0n ? span(Number(d.pausedSeconds) * 1000) : "—",
          String(d.extensions),
          d.calendarFallback ? t.detail.fallback : t.detail.official,
        ]),
        "deadlines",
      ),
      h("h3", {}, t.detail.timeline),
      table(
        t.detail.timelineCols,
        timeline.events.map((e) => {
          const parts = [e.reason, e.text];
          if (e.levelFrom && e.levelTo && e.levelFrom !== e.levelTo) parts.push(`${levelName(e.levelFrom)} → ${levelName(e.levelTo)}`);
          if (e.clock) parts.push(`${t.clock[Clock[e.clock]] ?? ""}${e.dueAt ? ` ${when(e.dueAt, true)}` : ""}`);
          if (e.satisfaction) parts.push(t.satisfaction[Satisfaction[e.satisfaction]] ?? "");
          return [String(e.seq), when(e.at, true), t.event[EventKind[e.kind]] ?? EventKind[e.kind], e.actor, e.unit || "", parts.filter(Boolean).join("；")];
        }),
        "timeline",
      ),
    );
    this.paint();
  }

  private actions(ticket: Ticket, timeline: Timeline): Node {
    const mine = ACTIONS.filter(
      (a) => a.roles.includes(this.principal.role) && a.when(ticket, timeline, this.principal) && (a.key === "note" || !FINISHED.includes(ticket.status) || a.key === "callback"),
    );
    const panel = h("div", { class: "form-panel" });
    return h(
      "div",
      { class: "actions" },
      h("h3", {}, t.detail.actions),
      mine.length === 0
        ? h("p", { class: "muted" }, t.detail.noActions)
        : h(
            "div",
            { class: "action-buttons" },
            mine.map((a) =>
              h("button", { type: "button", "data-action": a.key, onclick: () => fill(panel, this.form(a, ticket, panel)) }, t.action[a.key]),
            ),
          ),
      panel,
    );
  }

  private form(action: ActionDef, ticket: Ticket, panel: HTMLElement): HTMLFormElement {
    const submit = h("button", { type: "submit" }, t.action.submit);
    const form = h(
      "form",
      {
        class: "action-form",
        "data-action": action.key,
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const values: Values = {};
          new FormData(form).forEach((value, key) => (values[key] = String(value).trim()));
          submit.disabled = true;
          try {
            await action.run(ticket, values);
            this.notice.className = "notice ok";
            this.notice.textContent = `${t.detail.done}：${t.action[action.key]}`;
          } catch (err) {
            this.notice.className = "notice error";
            this.notice.textContent = isCode(err, Code.Aborted) ? t.detail.conflict : describe(err);
            if (!isCode(err, Code.Aborted)) {
              submit.disabled = false;
              return;
            }
          }
          fill(panel);
          await this.load();
        },
      },
      h("h4", {}, t.action[action.key]),
      action.fields.map((field) => this.input(field, ticket)),
      h("div", { class: "form-buttons" }, submit, h("button", { type: "button", class: "secondary", onclick: () => fill(panel) }, t.action.cancelForm)),
    );
    return form;
  }

  private input(field: Field, ticket: Ticket): Node {
    const required = field.required || undefined;
    switch (field.kind) {
      case "textarea":
        return h("label", {}, field.label, h("textarea", { name: field.name, rows: 3, required, maxlength: 2000 }));
      case "number":
        return h("label", {}, field.label, h("input", { type: "number", name: field.name, min: 1, max: 60, value: 1, required }));
      case "select":
        return h("label", {}, field.label, h("select", { name: field.name }, (field.options ?? []).map(([v, l]) => h("option", { value: v }, l))));
      case "check":
        return h("label", { class: "check" }, h("input", { type: "checkbox", name: field.name }), field.label);
      case "unit": {
        // A unit token acts in its own unit's name only; others pick (the lead unit by default).
        const own = this.principal.unit;
        const pending = ticket.coHandlers.find((c) => !c.reportedInAt)?.unit;
        return h("label", {}, field.label, h("input", { name: field.name, value: own ?? ticket.leadUnit ?? pending ?? "", readonly: own !== null || undefined, required, size: 40 }));
      }
      default:
        return h("label", {}, field.label, h("input", { name: field.name, required, size: 40 }));
    }
  }

  /** The service changed this ticket: show it as it is now, unless a form is being filled in. */
  refresh(): void {
    void this.load(true);
  }
}

function table(cols: string[], rows: string[][], cls = ""): HTMLTableElement {
  return h(
    "table",
    { class: `plain ${cls}` },
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))),
  );
}
