// Times, durations and deadline states as the console shows them.

import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Level, Status, type Ticket } from "./gen/doorstep/v1/ticket_pb";
import { t } from "./strings";

export function date(ts: Timestamp | undefined): Date | null {
  return ts ? timestampDate(ts) : null;
}

const two = (n: number) => String(n).padStart(2, "0");

/** Local date and time, `2026-12-01 16:38`. */
export function when(ts: Timestamp | undefined, seconds = false): string {
  const d = date(ts);
  if (!d) return "—";
  const text = `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
  return seconds ? `${text}:${two(d.getSeconds())}` : text;
}

/** Month, day and time, `12-01 16:38`, for the queue's narrow columns. */
export function short(ts: Timestamp | undefined): string {
  const d = date(ts);
  if (!d) return "—";
  return `${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
}

/** Names of nodes and units by code, from the reference data (codes where a name is not known). */
export const names = new Map<string, string>();
export const nameOf = (code: string) => names.get(code) ?? code;

/** A length of time in the largest two units: `2天3小时`, `5分12秒`. */
export function span(ms: number): string {
  const total = Math.floor(Math.abs(ms) / 1000);
  const parts: [number, string][] = [
    [Math.floor(total / 86400), t.countdown.day],
    [Math.floor((total % 86400) / 3600), t.countdown.hour],
    [Math.floor((total % 3600) / 60), t.countdown.minute],
    [total % 60, t.countdown.second],
  ];
  const first = parts.findIndex(([n]) => n > 0);
  if (first < 0) return `0${t.countdown.second}`;
  return parts
    .slice(first, first + 2)
    .map(([n, unit]) => `${n}${unit}`)
    .join("");
}

export const FINISHED = [Status.RESOLVED, Status.CLOSED, Status.MERGED, Status.CANCELLED];
export const OPEN = [Status.NEW, Status.RETURNED, Status.DISPATCHED, Status.IN_PROGRESS, Status.SUSPENDED];

/** The deadline running now: the sign-for while one is awaited, else the resolve deadline. */
export function runningDeadline(ticket: Ticket): { clock: "ACKNOWLEDGE" | "RESOLVE"; due: Date } | null {
  const ack = date(ticket.acknowledgeDueAt);
  if (ack) return { clock: "ACKNOWLEDGE", due: ack };
  const resolve = date(ticket.resolveDueAt);
  if (resolve) return { clock: "RESOLVE", due: resolve };
  return null;
}

export type DeadlineState = "onTime" | "yellow" | "red" | "none";

/** Red card: a deadline breached (or the running one past due); yellow: past the warning instant. */
export function deadlineState(ticket: Ticket, now: number): DeadlineState {
  if (ticket.breached || ticket.overdue) return "red";
  const running = runningDeadline(ticket);
  if (running && running.due.getTime() <= now) return "red";
  if (FINISHED.includes(ticket.status)) return "none";
  const warn = date(ticket.warnAt);
  if (warn && warn.getTime() <= now) return "yellow";
  return running ? "onTime" : "none";
}

/** `剩 2小时5分` or `超 3分10秒`. */
export function countdown(ticket: Ticket, now: number): string {
  if (FINISHED.includes(ticket.status)) return "—";
  const running = runningDeadline(ticket);
  if (!running) return "—";
  const left = running.due.getTime() - now;
  return left >= 0 ? t.countdown.left(span(left)) : t.countdown.over(span(left));
}

export const levelName = (level: Level) => t.level[Level[level]] ?? Level[level];
export const statusName = (status: Status) => t.status[Status[status]] ?? Status[status];
