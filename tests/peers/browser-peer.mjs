// Drives a Chromium the test started (over the DevTools protocol) through one of
// Sealgate's pages with playwright-core, and prints what it saw as one JSON object.
// usage: node browser-peer.mjs WS_ENDPOINT URL SCREENSHOT QUERY
import { chromium } from "playwright-core";

const [endpoint, url, screenshot, query] = process.argv.slice(2);
const browser = await chromium.connectOverCDP(endpoint);
const context = browser.contexts()[0] ?? (await browser.newContext());
const page = await context.newPage();
await page.setViewportSize({ width: 1280, height: 800 });

const seen = { console: [], errors: [], requests: [], dialogs: [] };
page.on("console", (m) => seen.console.push({ type: m.type(), text: m.text() }));
page.on("pageerror", (e) => seen.errors.push(String(e)));
page.on("request", (r) => seen.requests.push(r.url()));
page.on("dialog", (d) => { seen.dialogs.push(d.message()); d.dismiss(); });

const visible = () =>
  page.$$eval("tr.result", (rows) => rows.filter((r) => !r.hidden && r.offsetParent !== null)
    .map((r) => r.dataset.status));

await page.goto(url, { waitUntil: "load" });
const result = { title: await page.title(), summary: await page.textContent("#summary") };
result.initial = await visible();
result.firstFailing = await page.evaluate(() => {
  const row = document.querySelector("tr.result.failing");
  if (!row) { return null; }
  const box = row.getBoundingClientRect();
  return { top: box.top, bottom: box.bottom, viewport: window.innerHeight };
});
await page.screenshot({ path: screenshot, fullPage: true });

const statuses = await page.$$eval("input[name=status]", (boxes) => boxes.map((b) => b.value));
result.without = {};
for (const status of statuses) {
  await page.uncheck(`input[name=status][value=${status}]`);
  result.without[status] = await visible();
  await page.check(`input[name=status][value=${status}]`);
}
await page.fill("#search", query);
result.searched = await visible();
result.shown = await page.textContent("#shown");
await page.fill("#search", "no-such-thing-anywhere-zzz");
result.nothing = await visible();
result.emptyNote = await page.isVisible("#empty");
await page.fill("#search", "");
result.cleared = await visible();
await page.emulateMedia({ media: "print" });
result.controlsPrinted = await page.isVisible("#controls");
result.rowsPrinted = (await visible()).length;
await page.pdf({ path: screenshot.replace(/\.png$/, ".pdf") }).catch(() => {});

Object.assign(result, seen);
await page.close();
await browser.close();
process.stdout.write(JSON.stringify(result) + "\n");
