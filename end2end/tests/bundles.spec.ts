// One wasm bundle holds every island of the site: a first visit to the gallery downloads it and no
// other, and the admin page's islands come from the same file.
import type { Page } from '@playwright/test';
import { expect, test } from './fixtures/test';

/** Every wasm file the page requests from now on. */
function wasmRequests(page: Page): string[] {
  const urls: string[] = [];
  page.on('request', (request) => {
    const path = new URL(request.url()).pathname;
    if (path.endsWith('.wasm')) urls.push(path);
  });
  return urls;
}

const bundle = /\/pkg\/live-gallery\.[^/]+\.wasm$/;

test('a first visit to the gallery loads the one bundle', async ({ gallery, page }) => {
  const wasm = wasmRequests(page);
  await gallery.open();
  await expect(gallery.heading).toBeVisible();
  expect(wasm).toHaveLength(1);
  expect(wasm[0]).toMatch(bundle);
});

test('the admin page, reached from the gallery, is interactive with the same bundle', async ({ admin, gallery, page }) => {
  const wasm = wasmRequests(page);
  await gallery.open();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).click();
  await expect(page).toHaveURL(/\/admin$/);
  await page.locator('body[data-hydrated="true"]').waitFor();
  expect(wasm.length).toBeGreaterThan(0);
  expect(new Set(wasm)).toEqual(new Set([wasm[0]]));
  expect(wasm[0]).toMatch(bundle);
  await admin.revealToggle.click();
  await expect(admin.token).toHaveAttribute('type', 'text');
});
