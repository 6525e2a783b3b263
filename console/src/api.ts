// The service, over gRPC-Web on the page's own origin, with the tab's token; who the caller is
// (/console/session); error text for people.

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { TicketService } from "./gen/doorstep/v1/ticket_pb";
import { ReportService } from "./gen/doorstep/v1/report_pb";
import { AdminService } from "./gen/doorstep/v1/admin_pb";
import { t } from "./strings";

const TOKEN_KEY = "doorstep.console.token";

/** The tab's token: sessionStorage ends with the tab, so a token never outlives it. */
export const token = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (value: string) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** Who the caller is, as `/console/session` answers. */
export interface Principal {
  name: string;
  role: "intake" | "dispatcher" | "unit" | "supervisor" | "reporter" | "admin";
  scope: string | null;
  unit: string | null;
  authenticated: boolean;
}

export type SessionAnswer =
  | { ok: true; principal: Principal }
  | { ok: false; status: number; message: string };

/** Asks the service who `secret` (or, without one, the local principal) is. */
export async function session(secret: string | null): Promise<SessionAnswer> {
  const headers: Record<string, string> = {};
  if (secret) headers.authorization = `Bearer ${secret}`;
  let response: Response;
  try {
    response = await fetch("session", { headers, cache: "no-store" });
  } catch {
    return { ok: false, status: 0, message: t.error.network };
  }
  const body = await response.json().catch(() => ({}));
  if (response.ok) return { ok: true, principal: body as Principal };
  return { ok: false, status: response.status, message: String(body.error ?? "") };
}

const bearer: Interceptor = (next) => async (request) => {
  const secret = token.get();
  if (secret) request.header.set("authorization", `Bearer ${secret}`);
  return next(request);
};

const transport = createGrpcWebTransport({
  baseUrl: location.origin,
  interceptors: [bearer],
});

export const tickets: Client<typeof TicketService> = createClient(TicketService, transport);
export const reports: Client<typeof ReportService> = createClient(ReportService, transport);
export const admin: Client<typeof AdminService> = createClient(AdminService, transport);

/** What a failed call says to a person: the kind of failure in their words, then the service's. */
export function describe(error: unknown): string {
  if (error instanceof ConnectError) {
    const kind = t.error.code[Code[error.code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase()];
    return kind ? `${kind}：${error.rawMessage}` : `${t.error.generic}：${error.rawMessage}`;
  }
  return `${t.error.generic}：${String(error)}`;
}

export function isCode(error: unknown, code: Code): boolean {
  return error instanceof ConnectError && error.code === code;
}

export { Code };
