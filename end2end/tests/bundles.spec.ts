// The admin pages' code is a wasm bundle of its own: a visitor of the gallery never downloads it,
// and the admin page loads it (and only then counts as interactive), directly or from the gallery.
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

const adminBundle = /\/pkg\/split_+admin_route_view_[^/]*\.wasm$/;

test('a first visit to the gallery loads the main bundle only', async ({ gallery, page }) => {
  const wasm = wasmRequests(page);
  await gallery.open();
  await expect(gallery.heading).toBeVisible();
  expect(wasm).toHaveLength(1);
  expect(wasm[0]).toMatch(/\/pkg\/live-gallery\.[^/]+\.wasm$/);
});

test('the admin page loads its own bundle and is interactive once it has', async ({ admin, page }) => {
  const wasm = wasmRequests(page);
  await admin.open();
  expect(wasm.filter((path) => adminBundle.test(path))).toHaveLength(1);
  await admin.revealToggle.click();
  await expect(admin.token).toHaveAttribute('type', 'text');
});

test('following the Admin link from the gallery loads the admin bundle then', async ({ admin, gallery, page }) => {
  const wasm = wasmRequests(page);
  await gallery.open();
  expect(wasm.some((path) => adminBundle.test(path))).toBe(false);

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).click();
  await expect(page).toHaveURL(/\/admin$/);
  await expect(admin.revealToggle).toBeVisible();
  expect(wasm.filter((path) => adminBundle.test(path))).toHaveLength(1);
  await admin.revealToggle.click();
  await expect(admin.token).toHaveAttribute('type', 'text');
});
