// Real-browser end-to-end test of the RICE Atlas site, in Debian's headless chromium driven by playwright-core.
// Usage: node site.mjs http://127.0.0.1:PORT [screenshot-dir]
// Prints one line per check and a final "N passed, M failed"; exits non-zero on any failure.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const base = process.argv[2] ?? "http://127.0.0.1:8080";
const shots = process.argv[3] ?? "target/e2e";
mkdirSync(shots, { recursive: true });

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e.message.split("\n")[0]}`);
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const consoleErrors = [];
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(`${page.url()}: ${m.text()}`); });
page.on("pageerror", (e) => consoleErrors.push(e.message));

await check("home page renders the RICE × taxonomy matrix", async () => {
  const response = await page.goto(base + "/");
  assert(response.ok(), `status ${response.status()}`);
  assert(await page.locator("table.matrix").isVisible(), "no matrix");
  const cells = await page.locator("table.matrix td a").count();
  assert(cells > 40, `only ${cells} linked cells`);
  await page.screenshot({ path: `${shots}/home.png`, caret: "initial" });
});

await check("'/' focuses the search box", async () => {
  await page.locator("h1").first().click();
  await page.keyboard.press("/");
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  assert(focused === "search-input", `focused ${focused}`);
});

await check("typing a misspelled query shows results as you type", async () => {
  await page.keyboard.type("reward hackng", { delay: 40 });
  const first = page.locator("#live-results li a").first();
  await first.waitFor({ state: "visible", timeout: 5000 });
  const text = await first.innerText();
  assert(/Reward hacking/.test(text), `first live result was: ${text}`);
  const marks = await page.locator("#live-results mark").count();
  assert(marks > 0, "no highlighted matches");
  assert(page.url() === base + "/", "the page navigated; results should appear in place");
  await page.screenshot({ path: `${shots}/search-as-you-type.png`, caret: "initial" });
});

await check("opening a result shows the entry", async () => {
  await Promise.all([page.waitForURL(/\/entries\/reward-hacking$/), page.locator("#live-results li a").first().click()]);
  assert((await page.locator("h1").innerText()).includes("Reward hacking"), "wrong entry");
});

await check("an entry's math renders as MathML", async () => {
  await page.goto(base + "/entries/dpo");
  const maths = await page.locator("article math").count();
  assert(maths > 3, `${maths} math elements`);
  const box = await page.locator("article math[display=block]").first().boundingBox();
  assert(box && box.width > 100 && box.height > 15, `display formula has no size: ${JSON.stringify(box)}`);
  await page.screenshot({ path: `${shots}/entry-dpo.png`, caret: "initial" });
});

await check("the search page works without JavaScript", async () => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const plain = await context.newPage();
  await plain.goto(base + "/search?q=IDA");
  const first = await plain.locator("#results li h3").first().innerText();
  assert(/Iterated Distillation/.test(first), `first result: ${first}`);
  await plain.screenshot({ path: `${shots}/search-no-js.png`, caret: "initial" });
  await context.close();
});

await check("dark theme toggle switches the palette", async () => {
  await page.goto(base + "/entries?rice=interpretability");
  const before = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await page.locator("#theme-toggle").click();
  const after = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert(before !== after, `background stayed ${before}`);
  await page.screenshot({ path: `${shots}/entries-dark.png`, caret: "initial" });
});

await check("a narrow screen gets the one-column layout", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(base + "/search?q=scalable+oversight");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow <= 1, `page is ${overflow}px wider than the screen`);
  await page.screenshot({ path: `${shots}/search-mobile.png`, caret: "initial" });
});

await check("a book chapter renders with its title, sidebar and MathML", async () => {
  await page.setViewportSize({ width: 1280, height: 900 });
  const response = await page.goto(base + "/book/chapters/04-learning-from-feedback.html");
  assert(response.ok(), `status ${response.status()}`);
  assert(/Learning from Feedback/.test(await page.title()), `title ${await page.title()}`);
  assert((await page.locator("main h1").innerText()).includes("Learning from Feedback"), "no chapter heading");
  const maths = await page.locator("main math").count();
  assert(maths > 10, `${maths} math elements`);
  const formula = page.locator("main math[display=block]").first();
  await formula.scrollIntoViewIfNeeded();
  const box = await formula.boundingBox();
  assert(box && box.width > 100 && box.height > 15, `display formula has no size: ${JSON.stringify(box)}`);
  assert(await page.locator("#mdbook-sidebar a[href$='04-learning-from-feedback.html']").count() > 0, "no sidebar entry");
  await page.screenshot({ path: `${shots}/book-chapter.png`, caret: "initial" });
});

await check("a book lab renders with commands and answers folded away", async () => {
  const response = await page.goto(base + "/book/labs/dpo.html");
  assert(response.ok(), `status ${response.status()}`);
  assert(/DPO/.test(await page.title()), `title ${await page.title()}`);
  assert(await page.locator("main pre code").count() > 2, "no command blocks");
  const answer = page.locator("main details").first();
  assert(!(await answer.evaluate((d) => d.open)), "answers start folded");
  await answer.locator("summary").click();
  assert(await answer.evaluate((d) => d.open), "the answer did not open");
  assert(await page.locator("main math").count() > 0, "no MathML in the lab");
  await page.screenshot({ path: `${shots}/book-lab.png`, caret: "initial" });
});

await check("the book's search box searches the site, book sections included", async () => {
  await page.locator("#rice-search-input").fill("glaivouxite");
  await Promise.all([page.waitForURL(/\/search\?q=glaivouxite/), page.locator("#rice-search-input").press("Enter")]);
  const link = page.locator("#results li h3 a[href^='/book/']").first();
  await link.waitFor({ state: "visible", timeout: 5000 });
  const href = await link.getAttribute("href");
  await Promise.all([page.waitForURL(/\/book\//), link.click()]);
  assert(page.url().endsWith(href), `went to ${page.url()}`);
});

await check("entry pages and book pages link to each other", async () => {
  await page.goto(base + "/entries/dpo");
  const toBook = page.locator("section.book a[href='/book/entries/dpo.html']");
  assert(await toBook.count() === 1, "no link to the book's reference page");
  await Promise.all([page.waitForURL(/\/book\/entries\/dpo\.html$/), toBook.click()]);
  assert(await page.locator("main a[href='/entries/dpo']").count() > 0, "no link back to the entry page");
});

await check("no console errors (CSP violations included)", async () => {
  assert(consoleErrors.length === 0, consoleErrors.join(" | "));
});

await browser.close();
console.log(`e2e: ${passed} passed, ${failed} failed`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
