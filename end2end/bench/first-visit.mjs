// A first visit to a live-gallery page in Chromium, for the benchmark (`loadgen --only
// first-visit` runs it): bytes on the wire (what the network carried, compressed, headers
// included) and the time from navigation to an interactive page (hydrated: the app sets
// `data-hydrated` on <body>), with an empty cache; then the same visit again with the cache the
// first one filled. Prints one JSON object.
//
//   node end2end/bench/first-visit.mjs http://127.0.0.1:3000/
import { chromium } from '@playwright/test';

const url = process.argv[2];
if (!url) {
  console.error('usage: first-visit.mjs URL');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});

/** One visit in `page`: what each response carried on the wire, and when the page hydrated. */
async function visit(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const urls = new Map();
  const resources = [];
  cdp.on('Network.responseReceived', (event) => {
    urls.set(event.requestId, { url: event.response.url, cached: event.response.fromDiskCache });
  });
  cdp.on('Network.loadingFinished', (event) => {
    const seen = urls.get(event.requestId) ?? { url: '?', cached: false };
    resources.push({ url: seen.url, bytes: event.encodedDataLength, cached: seen.cached });
  });
  await page.goto(url, { waitUntil: 'commit' });
  await page.waitForSelector('body[data-hydrated]', { timeout: 60_000 });
  const interactiveMs = await page.evaluate(() => window.__hydratedAt);
  // Let responses still in flight finish, so their bytes are counted.
  await page.waitForLoadState('networkidle');
  await cdp.detach();
  const bytes = resources.reduce((sum, r) => sum + r.bytes, 0);
  return { bytes, interactiveMs, resources };
}

const context = await browser.newContext();
// Notes the moment the app marks the page hydrated, in the page's own clock (from navigation).
await context.addInitScript(() => {
  new MutationObserver((_, observer) => {
    if (document.body?.hasAttribute('data-hydrated')) {
      window.__hydratedAt = performance.now();
      observer.disconnect();
    }
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-hydrated'] });
});
const first = await visit(await context.newPage());
const again = await visit(await context.newPage());
await browser.close();
console.log(JSON.stringify({ first, again }));
