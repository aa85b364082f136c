// The console end to end in headless Debian chromium (playwright-core), run by tests/e2e/console_spec.lua
// against a `cachost run` whose store holds synced sandbox tenants.  Env: CONSOLE_URL, ADMIN_PASSWORD,
// VIEWER_PASSWORD, SHOTS (a directory for a screenshot of each page), CHROMIUM (default /usr/bin/chromium).
// Prints "ok - what" per step; the first failure ends it with "not ok - what: why" and exit status 1.
import { chromium } from "playwright-core";

const url = process.env.CONSOLE_URL;
const shots = process.env.SHOTS;
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"] });
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
const problems = [];
// script errors and Content-Security-Policy violations (the 401 of "am I signed in?" is expected)
page.on("console", (m) => { if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(m.text()); });
page.on("pageerror", (e) => problems.push(String(e)));
page.on("dialog", (d) => d.accept());         // the confirmations of undo and of a policy's mode

let step = "start";
async function check(what, fn) {
  step = what;
  await fn();
  if (problems.length) throw new Error("the page reported: " + problems.join(" | "));
  console.log("ok - " + what);
}
const ready = (view) => page.waitForSelector(`body[data-ready="${view}"]`);
async function go(hash, view) {
  await page.evaluate((h) => { document.body.dataset.ready = ""; location.hash = h; }, hash);
  await ready(view);
}
async function signIn(name, password) {
  await page.goto(url);
  await page.waitForSelector("#login:not([hidden])");
  await page.fill("#login input[name=name]", name);
  await page.fill("#login input[name=password]", password);
  await page.click("#login button[type=submit]");
  await ready("apps");
}
const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

try {
  await check("a wrong password is refused", async () => {
    await page.goto(url);
    await page.waitForSelector("#login:not([hidden])");
    await page.fill("#login input[name=name]", "alice");
    await page.fill("#login input[name=password]", "not-the-password");
    await page.click("#login button[type=submit]");
    await page.waitForFunction(() => document.getElementById("login-error").textContent.includes("wrong name or password"));
    await shot("sign-in");
  });

  await check("an admin signs in and sees every instance with its health", async () => {
    await signIn("alice", process.env.ADMIN_PASSWORD);
    const text = await page.textContent("#view");
    for (const want of ["acme-okta", "acme-box", "okta", "box"]) if (!text.includes(want)) throw new Error(`no ${want} on the apps page`);
    const statuses = await page.$$eval("[data-status]", (els) => Object.fromEntries(els.map((e) => [e.closest("tr").cells[0].textContent, e.dataset.status])));
    if (statuses["acme-okta"] !== "ok" || statuses["acme-box"] !== "ok") throw new Error("statuses: " + JSON.stringify(statuses));
    await shot("apps");
  });

  await check("the brute-force alert opens with its evidence and is resolved", async () => {
    await go("#/alerts", "alerts");
    await shot("alerts");
    const row = page.locator("tr.clickable", { hasText: "bruteforce" }).first();
    await row.click();
    await ready("alert");
    if (!(await page.textContent("#view")).includes("Evidence")) throw new Error("no evidence");
    await page.click("#resolve");
    await page.waitForFunction(() => document.getElementById("alert-status")?.textContent === "resolved");
    await shot("alert");
  });

  await check("the quarantine is undone from the governance log", async () => {
    await go("#/governance", "governance");
    const row = page.locator("tr", { hasText: "quarantine_file" }).filter({ has: page.locator("button[data-undo]") }).first();
    await row.locator("button[data-undo]").click();
    await page.waitForFunction(() => document.body.textContent.includes("unquarantine_file"));
    await ready("governance");
    const undone = page.locator("tr", { hasText: "unquarantine_file" }).first();
    if (!(await undone.textContent()).includes("ok")) throw new Error("the undo did not succeed: " + (await undone.textContent()));
    await shot("governance");
  });

  await check("a policy is switched to enforce, with a confirmation", async () => {
    await go("#/policies", "policies");
    await page.selectOption('select[data-policy="impossible_travel"]', "enforce");
    await page.waitForFunction(() => document.querySelector('select[data-policy="impossible_travel"]')?.value === "enforce"
      && document.getElementById("toast").textContent.includes("enforce"));
    const mode = await page.evaluate(async () => (await (await fetch("/api/policies")).json()).find((p) => p.name === "impossible_travel").mode);
    if (mode !== "enforce") throw new Error("the policy is in " + mode);
    await shot("policies");
  });

  await check("pictures: sign-ins over time, failures by country, alerts, shared files", async () => {
    await go("#/pictures", "pictures");
    const drawn = await page.$$eval("canvas", (cs) => cs.filter((c) => c.width > 0 && c.height > 0).length);
    if (drawn !== 4) throw new Error(`${drawn} charts drawn`);
    await shot("pictures");
  });

  await check("investigate: a search across apps and a person's page", async () => {
    await go("#/investigate?q=example", "investigate");
    await page.locator("#view a[href^='#/person/']").first().click();
    await ready("person");
    await shot("person");
    await go("#/investigate", "investigate");
    await page.fill("#sql", "SELECT app, count(*) AS n FROM identities GROUP BY app ORDER BY app");
    await page.click("text=Run");
    await page.waitForSelector("#view table >> text=okta");
    await shot("investigate");
  });

  await check("a viewer sees but is refused an action", async () => {
    await page.click("#logout");
    await page.waitForSelector("#login:not([hidden])");
    await signIn("victor", process.env.VIEWER_PASSWORD);
    await go("#/policies", "policies");
    if (await page.$("select[data-policy]")) throw new Error("a viewer is offered the mode switch");
    const refused = await page.evaluate(async () => {
      const s = await (await fetch("/api/session")).json();
      const r = await fetch("/api/policies/bruteforce", { method: "POST", headers: { "Content-Type": "application/json",
        "X-CSRF-Token": s.csrf }, body: JSON.stringify({ mode: "audit" }) });
      return [r.status, (await r.json()).error];
    });
    if (refused[0] !== 403) throw new Error("a viewer's change answered " + refused.join(" "));
    await shot("viewer");
  });
} catch (e) {
  console.log(`not ok - ${step}: ${String(e.message || e).split("\n")[0]}`);
  await shot("failure").catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();
