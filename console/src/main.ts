// The console's entry: sign-in, the frame (who, live state, views), and the routes
// #/queue, #/ticket/ID and #/district.

import { admin, session, token, type Principal } from "./api";
import { Detail } from "./detail";
import { District } from "./district";
import { fill, h } from "./dom";
import { follow, type LiveState } from "./live";
import { Queue } from "./queue";
import { names } from "./fmt";
import { t } from "./strings";

const app = document.getElementById("app")!;
document.title = t.title;

async function boot(): Promise<void> {
  const secret = token.get();
  const answer = await session(secret);
  if (answer.ok) return start(answer.principal);
  if (secret) token.clear();
  // Without a token an unauthenticated loopback service answers with its local principal (above).
  signIn(secret ? answer : null);
}

function signIn(failed: { status: number; message: string } | null): void {
  const input = h("input", { type: "password", name: "token", autocomplete: "off", required: true, size: 50, autofocus: true });
  const error = h("p", { class: "notice error", role: "alert" });
  if (failed) error.textContent = failed.status === 429 ? t.signIn.throttled : failed.status === 401 ? t.signIn.bad : t.signIn.unavailable;
  fill(
    app,
    h(
      "form",
      {
        class: "sign-in",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const value = input.value.trim();
          const answer = await session(value);
          if (answer.ok) {
            token.set(value);
            start(answer.principal);
          } else {
            error.textContent = answer.status === 429 ? t.signIn.throttled : answer.status === 401 ? t.signIn.bad : t.signIn.unavailable;
          }
        },
      },
      h("h1", {}, t.title),
      h("h2", {}, t.signIn.heading),
      h("label", {}, t.signIn.token, input),
      h("p", { class: "muted" }, t.signIn.tokenHint),
      h("button", { type: "submit" }, t.signIn.submit),
      error,
    ),
  );
}

function start(principal: Principal): void {
  const canQueue = ["dispatcher", "unit", "supervisor", "admin"].includes(principal.role);
  const canReport = ["supervisor", "reporter", "admin"].includes(principal.role);
  const live = h("span", { class: "live live-connecting", "data-live": "connecting" }, t.live.connecting);
  const main = h("main", {});
  const who = principal.authenticated
    ? `${principal.name} · ${t.role[principal.role] ?? principal.role}${principal.scope ? ` · ${principal.scope}` : ""}`
    : t.localPrincipal;
  let stopLive = () => {};
  fill(
    app,
    h(
      "header",
      {},
      h("h1", {}, t.title),
      h(
        "nav",
        {},
        canQueue ? h("a", { href: "#/queue" }, t.nav.queue) : null,
        canReport ? h("a", { href: "#/district" }, t.nav.district) : null,
      ),
      canQueue ? live : null,
      h("span", { class: "who", "data-role": principal.role }, who),
      principal.authenticated
        ? h(
            "button",
            {
              type: "button",
              class: "secondary",
              onclick: () => {
                stopLive();
                token.clear();
                location.hash = "";
                signIn(null);
              },
            },
            t.signOut,
          )
        : null,
    ),
    main,
  );

  let queue: Queue | null = null;
  let detail: Detail | null = null;
  let district: District | null = null;
  const setLive = (state: LiveState) => {
    live.className = `live live-${state}`;
    live.dataset.live = state;
    live.textContent = t.live[state];
  };

  if (canQueue) {
    queue = new Queue((id) => (location.hash = `#/ticket/${encodeURIComponent(id)}`), []);
    const q = queue;
    void q.load();
    // Names for the codes in the rows, and the units the filter offers.
    void Promise.all([
      admin.listUnits({ node: "" }),
      admin.listNodes({ parent: principal.scope ?? "", recursive: true }),
    ])
      .then(([units, nodes]) => {
        for (const u of units.units) names.set(u.code, u.name);
        for (const n of nodes.nodes) names.set(n.code, n.name);
        const list = document.getElementById("units");
        if (list) fill(list, units.units.map((u) => h("option", { value: u.code }, u.name)));
        q.render();
      })
      .catch(() => {});
    stopLive = follow({
      changed: (ids) => {
        void q.changed(ids);
        if (detail && ids.has(detail.id)) detail.refresh();
      },
      reload: () => void q.load(),
      state: setLive,
      signedOut: () => {
        token.clear();
        signIn({ status: 401, message: "" });
      },
    });
  }

  const route = () => {
    detail?.close();
    detail = null;
    const hash = location.hash;
    const ticket = hash.match(/^#\/ticket\/(.+)$/);
    if (ticket && canQueue) {
      detail = new Detail(decodeURIComponent(ticket[1]), principal, () => (location.hash = "#/queue"));
      fill(main, detail.root);
      void detail.load();
    } else if ((hash === "#/district" || !canQueue) && canReport) {
      district ??= new District(principal);
      fill(main, district.root);
      void district.start();
    } else if (queue) {
      fill(main, queue.root);
    } else {
      fill(main, h("p", { class: "notice" }, principal.role === "intake" ? t.queue.intakeOnly : t.queue.reporterOnly));
    }
  };
  window.onhashchange = route;
  route();
}

void boot();
