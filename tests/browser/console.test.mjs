// The console in headless Chromium against real `doorstep serve --demo` processes (see run.sh):
// sign-in, scope, live updates, actions by two roles, masking, version conflicts, the district view,
// the open loopback service; screenshots and figures under DOORSTEP_BROWSER_OUT.
import { spawn, execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import assert from "node:assert/strict";

const require = createRequire(join(process.env.NODE_PATH, "_"));
const { chromium } = require("playwright-core");

const BIN = process.env.DOORSTEP_BIN;
const PYTHON = process.env.DOORSTEP_PYTHON;
const FILE_TICKET = process.env.DOORSTEP_FILE_TICKET;
const OUT = process.env.DOORSTEP_BROWSER_OUT;

const STREET = "lixia/jiefanglu";
const COMPOUND = "lixia/jiefanglu/jiefangqiao/yard-129";
const WORKERS = `${COMPOUND}/workers`;
const ELSEWHERE = "lixia/qianfoshan/lishanmingjun/phase-1";
/** Generous for a loaded 2-core machine, except where the console promises a figure (2 s live). */
const WAIT = 20_000;
const LIVE_MS = 2_000;

const work = mkdtempSync(join(tmpdir(), "doorstep-browser-"));
const children = [];
const figures = {};
let failures = 0;
let passes = 0;

async function check(name, body) {
  const started = Date.now();
  try {
    await body();
    passes++;
    console.log(`ok      ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failures++;
    console.log(`FAILED  ${name}\n${e.stack ?? e}`);
  }
}

/** `doorstep serve --demo` on a free loopback port and its own SQLite file; resolves to its address. */
async function serve(name, ...flags) {
  const database = `sqlite://${join(work, `${name}.db`)}`;
  const child = spawn(BIN, ["serve", "--listen", "127.0.0.1:0", "--database-url", database, "--demo", ...flags], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, DOORSTEP_LOG: "warn" },
  });
  children.push(child);
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const addr = await new Promise((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => reject(new Error(`${name}: no "listening" line within 30 s\n${stderr}`)), 30_000);
    child.stdout.on("data", (d) => {
      stdout += d;
      const m = stdout.match(/doorstep listening on (\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (code) => reject(new Error(`${name}: exited ${code} before listening\n${stderr}`)));
  });
  return { addr, database, url: `http://${addr}/console/` };
}

function token(database, ...args) {
  return execFileSync(BIN, ["token", "create", "--database-url", database, "--expires", "1d", ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  }).trim();
}

/** Files a ticket over gRPC with the Python client; resolves when the service has acknowledged it. */
function file(server, tokenValue, ref, ...args) {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [FILE_TICKET, "--server", server.addr, "--token", tokenValue, "--external-ref", ref, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => {
      out += d;
      // The line is printed once CreateTicket has answered: the commit is acknowledged.
      const m = out.match(/^ticket (\S+) created=true/m);
      if (m) resolve({ id: m[1], acknowledgedAt: Date.now() });
    });
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code) => {
      if (code !== 0) reject(new Error(`file_ticket.py exited ${code}: ${err}`));
    });
  });
}

async function signIn(context, server, secret) {
  const page = await context.newPage();
  await page.goto(server.url);
  await page.locator('input[name="token"]').fill(secret);
  await page.locator("form.sign-in button").click();
  await page.locator("header .who").waitFor({ timeout: WAIT });
  return page;
}

const row = (page, id) => page.locator(`tr[data-id="${id}"]`);

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
const newContext = () => browser.newContext({ viewport: { width: 1366, height: 768 }, locale: "zh-CN", timezoneId: "Asia/Shanghai" });
try {
  const server = await serve("auth", "--auth", "required");
  const intake = token(server.database, "--role", "intake", "--scope", "lixia");
  const dispatcher = token(server.database, "--role", "dispatcher", "--scope", STREET, "--name", "解放路派单员");
  const unit = token(server.database, "--role", "unit", "--unit", WORKERS);
  const supervisor = token(server.database, "--role", "supervisor", "--scope", STREET, "--name", "解放路督办");

  const here = await file(server, intake, "BR-STREET-1", "--node", COMPOUND, "--caller-name", "张女士", "--caller-phone", "13812345678", "--content", "3号楼楼道灯不亮");
  const there = await file(server, intake, "BR-OTHER-1", "--node", ELSEWHERE, "--content", "千佛山街道的路灯坏了");

  // Every request the pages make, to check that none leaves the service's origin.
  const requests = [];
  const dispatcherContext = await newContext();
  dispatcherContext.on("request", (r) => requests.push(r.url()));

  let queuePage;
  await check("a wrong token is refused at sign-in and nothing is kept", async () => {
    const page = await dispatcherContext.newPage();
    await page.goto(server.url);
    await page.locator('input[name="token"]').fill("dst_" + "0".repeat(64));
    await page.locator("form.sign-in button").click();
    await page.locator(".sign-in .error").filter({ hasText: "令牌无效" }).waitFor({ timeout: WAIT });
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await page.close();
  });

  await check("a street dispatcher signs in and the queue shows that street's tickets, not another's", async () => {
    queuePage = await signIn(dispatcherContext, server, dispatcher);
    await row(queuePage, here.id).waitFor({ timeout: WAIT });
    assert.equal(await row(queuePage, there.id).count(), 0, "another street's ticket is listed");
    assert.match(await queuePage.locator("header .who").innerText(), /解放路派单员/);
    const cells = await row(queuePage, here.id).locator("td").allInnerTexts();
    assert.equal(cells[1], "普通事项");
    assert.equal(cells[2], "待签收");
    assert.equal(await row(queuePage, here.id).locator("td.unit").getAttribute("title"), WORKERS);
    assert.notEqual(cells[5], "—");
    assert.match(cells[7], /正常|黄牌|红牌/);
    assert.match(cells[8], /^(剩|超) \d/);
  });

  await check("first load: the page, signed in (token kept for the tab), shows its queue", async () => {
    const started = Date.now();
    await queuePage.reload();
    await row(queuePage, here.id).waitFor({ timeout: WAIT });
    figures.firstLoadMs = Date.now() - started;
    figures.domContentLoadedMs = Math.round(
      await queuePage.evaluate(() => performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd),
    );
    await queuePage.locator('[data-live="connected"]').waitFor({ timeout: WAIT });
  });

  let fresh;
  await check(`a ticket filed over gRPC appears in the open queue within ${LIVE_MS} ms, newest first`, async () => {
    fresh = await file(server, intake, "BR-STREET-2", "--node", COMPOUND, "--caller-name", "李先生", "--caller-phone", "13900001111", "--content", "楼下垃圾两天没清运");
    await row(queuePage, fresh.id).waitFor({ timeout: LIVE_MS });
    figures.commitToRowMs = Date.now() - fresh.acknowledgedAt;
    const first = await queuePage.locator("tbody tr").first().getAttribute("data-id");
    assert.equal(first, fresh.id, "the newest ticket is first");
    await queuePage.screenshot({ path: join(OUT, "queue.png") });
  });

  let detailPage;
  await check("the dispatcher opens it: fields, caller unmasked for a dispatcher, deadlines with their rules", async () => {
    await row(queuePage, fresh.id).click();
    detailPage = queuePage;
    await detailPage.locator("table.deadlines tbody tr").first().waitFor({ timeout: WAIT });
    const text = await detailPage.locator(".fields").innerText();
    assert.match(text, /李先生/);
    assert.match(text, /13900001111/);
    assert.match(await detailPage.locator("table.deadlines").innerText(), /ROUTINE/);
    assert.ok(await detailPage.locator('button[data-action="dispatch"]').count(), "a dispatcher may re-dispatch");
    assert.equal(await detailPage.locator('button[data-action="resolve"]').count(), 0, "a dispatcher does not resolve");
  });

  const unitContext = await newContext();
  unitContext.on("request", (r) => requests.push(r.url()));
  // The token is kept per tab (sessionStorage), so the unit's one tab is kept for the later checks.
  let unitPage;
  await check("a unit token signs for the ticket and resolves it through the console", async () => {
    const page = (unitPage = await signIn(unitContext, server, unit));
    await row(page, fresh.id).waitFor({ timeout: WAIT });
    await row(page, fresh.id).click();
    await page.locator('button[data-action="acknowledge"]').click();
    assert.equal(await page.locator('form[data-action="acknowledge"] input[name="unit"]').inputValue(), WORKERS);
    await page.locator('form[data-action="acknowledge"] button[type="submit"]').click();
    await page.locator('button[data-action="resolve"]').waitFor({ timeout: WAIT });
    await page.locator('button[data-action="resolve"]').click();
    await page.locator('form[data-action="resolve"] textarea[name="resolution"]').fill("已联系环卫清运，现场已清理");
    await page.locator('form[data-action="resolve"] button[type="submit"]').click();
    await page.locator(".fields dd", { hasText: "已办结待回访" }).waitFor({ timeout: WAIT });
  });

  await check("the dispatcher's open detail shows both in the timeline without a reload", async () => {
    const timeline = detailPage.locator("table.timeline");
    await timeline.locator("tr", { hasText: "已联系环卫清运" }).waitFor({ timeout: WAIT });
    const text = await timeline.innerText();
    assert.match(text, /签收\t[^\n]*\t/);
    assert.match(text, new RegExp(`签收\\t${WORKERS}`));
    assert.match(text, new RegExp(`办结\\t${WORKERS}`));
    assert.match(await detailPage.locator(".fields").innerText(), /已办结待回访/);
    assert.ok(await detailPage.locator('button[data-action="callback"]').count(), "a dispatcher records the callback");
    await detailPage.screenshot({ path: join(OUT, "detail.png"), fullPage: true });
  });

  await check("a version conflict is explained and the ticket reloaded", async () => {
    await detailPage.locator('button[data-action="note"]').click();
    await detailPage.locator('form[data-action="note"] textarea').fill("派单员的备注");
    // The unit adds a note meanwhile: the dispatcher's form now holds a stale version.
    const page = unitPage;
    await page.locator('button[data-action="note"]').click();
    await page.locator('form[data-action="note"] textarea').fill("承办单位的备注");
    await page.locator('form[data-action="note"] button[type="submit"]').click();
    await page.locator("table.timeline tr", { hasText: "承办单位的备注" }).waitFor({ timeout: WAIT });
    // The dispatcher's page hears of it but keeps the form being filled in.
    await detailPage.locator(".notice", { hasText: "新的变化" }).waitFor({ timeout: WAIT });
    await detailPage.locator('form[data-action="note"] button[type="submit"]').click();
    await detailPage.locator(".notice.error", { hasText: "版本冲突" }).waitFor({ timeout: WAIT });
    await detailPage.locator("table.timeline tr", { hasText: "承办单位的备注" }).waitFor({ timeout: WAIT });
    assert.equal(await detailPage.locator("table.timeline tr", { hasText: "派单员的备注" }).count(), 0);
  });

  await check("filters: a resolved ticket leaves the open queue, shows under all statuses; by level", async () => {
    const page = detailPage;
    await page.locator(".detail-head button").click();
    await row(page, here.id).waitFor({ timeout: WAIT });
    assert.equal(await row(page, fresh.id).count(), 0, "a resolved ticket is not open");
    await page.locator('select[name="status"]').selectOption("");
    await page.locator("form.filters button[type=submit]").click();
    await row(page, fresh.id).waitFor({ timeout: WAIT });
    assert.match(await row(page, fresh.id).innerText(), /已办结待回访/);
    await page.locator('select[name="level"]').selectOption("HARD");
    await page.locator("form.filters button[type=submit]").click();
    await page.locator("td.empty").waitFor({ timeout: WAIT });
    await page.locator("form.filters button.secondary").click();
    await row(page, here.id).waitFor({ timeout: WAIT });
  });

  const supervisorContext = await newContext();
  supervisorContext.on("request", (r) => requests.push(r.url()));
  await check("a supervisor sees the caller masked, and the district view by child node", async () => {
    const page = await signIn(supervisorContext, server, supervisor);
    await page.goto(`${server.url}#/ticket/${here.id}`);
    await page.locator(".fields dd").first().waitFor({ timeout: WAIT });
    const text = await page.locator(".fields").innerText();
    assert.match(text, /张\*\*/);
    assert.match(text, /138\*\*\*\*5678/);
    assert.doesNotMatch(text, /张女士|13812345678/);
    assert.ok(await page.locator('button[data-action="urge"]').count(), "a supervisor urges");
    await page.goto(`${server.url}#/district`);
    await page.locator("table.figures tbody tr").first().waitFor({ timeout: WAIT });
    const figuresText = await page.locator("table.figures").innerText();
    assert.match(figuresText, /解放桥/);
    await page.locator("svg.chart").waitFor({ timeout: WAIT });
    assert.ok((await page.locator("svg.chart rect.bar").count()) >= 4, "a bar a week over four weeks");
    await page.screenshot({ path: join(OUT, "district.png"), fullPage: true });
  });

  await check("a reporter opens straight into the district view, with no queue and no personal data", async () => {
    const reporter = token(server.database, "--role", "reporter", "--scope", STREET);
    const context = await newContext();
    context.on("request", (r) => requests.push(r.url()));
    const page = await signIn(context, server, reporter);
    await page.locator("table.figures tbody tr").first().waitFor({ timeout: WAIT });
    assert.equal(await page.locator('header nav a[href="#/queue"]').count(), 0);
    assert.equal(await page.locator("[data-live]").count(), 0, "no event stream for a reporter");
    await context.close();
  });

  await check("no page asked anything of another origin", async () => {
    const origin = `http://${server.addr}/`;
    const elsewhere = requests.filter((u) => !u.startsWith(origin));
    assert.deepEqual(elsewhere, []);
    assert.ok(requests.length > 10);
  });

  await check("the live state says when it is reconnecting, and catches up after", async () => {
    // The service goes away and comes back on the same port and database (SIGTERM, then a new process).
    const child = children[0];
    const port = server.addr.split(":")[1];
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
    await queuePage.goto(`${server.url}#/queue`);
    await queuePage.locator('[data-live="reconnecting"], [data-live="connecting"]').waitFor({ timeout: WAIT });
    const again = spawn(BIN, ["serve", "--listen", `127.0.0.1:${port}`, "--database-url", server.database, "--demo", "--auth", "required"], {
      stdio: ["ignore", "ignore", "ignore"],
      env: { ...process.env, DOORSTEP_LOG: "warn" },
    });
    children.push(again);
    await queuePage.locator('[data-live="connected"]').waitFor({ timeout: WAIT });
    const later = await file(server, intake, "BR-STREET-3", "--node", COMPOUND, "--content", "重连后的新工单");
    await row(queuePage, later.id).waitFor({ timeout: WAIT });
  });

  await check("an open loopback service (no authentication) opens straight into the local principal's queue", async () => {
    const open = await serve("open");
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(open.url);
    await page.locator("header .who", { hasText: "本机" }).waitFor({ timeout: WAIT });
    await page.locator("table.tickets").waitFor({ timeout: WAIT });
    assert.equal(await page.locator("form.sign-in").count(), 0);
    await context.close();
  });
} finally {
  await browser.close();
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  await sleep(200);
  rmSync(work, { recursive: true, force: true });
}

const bundle = readFileSync(new URL("../../console/dist/console.js", import.meta.url));
const { gzipSync } = await import("node:zlib");
figures.bundleBytes = bundle.length;
figures.bundleGzipBytes = gzipSync(bundle, { level: 9 }).length;
writeFileSync(join(OUT, "figures.json"), JSON.stringify(figures, null, 2) + "\n");
console.log(`\nfigures: ${JSON.stringify(figures)}`);
console.log(`browser: ${passes} passed, ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
