// What the pages look like, compared with committed baselines: a gallery card liked and not, the
// admin table, and the gallery at phone width, in both colour schemes. Each test runs on a server
// of its own with fixed data; the live indicator (connecting or live) is masked. Baselines are
// made with `npx playwright test visual --update-snapshots` and reviewed before committing.
import type { Page } from '@playwright/test';
import { imageUrl } from './fixtures/data';
import { AdminPage } from './fixtures/admin-page';
import { GalleryPage } from './fixtures/gallery-page';
import { gotoHydrated } from './fixtures/hydration';
import { createOwnProduct, killOwnServers, ownBase, ownDataDir, ownToken, startOwnServer } from './fixtures/own-server';
import { expect, test } from './fixtures/test';

test.afterEach(killOwnServers);
// The screenshot style (fonts, no animations) is injected as an inline style, which the pages'
// own policy refuses; the policy has tests of its own (server/tests/integration/security.rs).
test.use({ bypassCSP: true });

const look = {
  stylePath: 'tests/fixtures/screenshot.css',
  animations: 'disabled',
  caret: 'hide',
  // Room for Debian Chromium's anti-aliasing from run to run, and no more: the like button is a
  // few hundred pixels of a card, and a change of its colour must show.
  threshold: 0.1,
  maxDiffPixelRatio: 0.002,
} as const;

/** A server of the test's own with two pictures; the gallery open on it. */
async function twoPictures(page: Page): Promise<GalleryPage> {
  await startOwnServer(ownDataDir());
  await createOwnProduct('Harbour at dawn', imageUrl(ownBase(), 'harbour'));
  await createOwnProduct('Sunset over the dunes', imageUrl(ownBase(), 'dunes'));
  const gallery = new GalleryPage(page);
  await expect(async () => {
    await gotoHydrated(page, `${ownBase()}/`);
    await expect(gallery.cards).toHaveCount(2, { timeout: 1_000 });
  }).toPass();
  // Every picture drawn before the shot.
  await expect
    .poll(() => page.evaluate(() => [...document.images].every((image) => image.complete && image.naturalWidth > 0)))
    .toBe(true);
  return gallery;
}

for (const colorScheme of ['light', 'dark'] as const) {
  test.describe(`${colorScheme} colour scheme`, () => {
    test.use({ colorScheme, viewport: { width: 1280, height: 900 } });

    test('a gallery card, not liked and liked', async ({ page }) => {
      const gallery = await twoPictures(page);
      const card = gallery.card('Harbour at dawn');
      await expect(card).toHaveScreenshot(`card-${colorScheme}.png`, look);
      await gallery.likeButton('Harbour at dawn').click();
      await expect(gallery.likeCount('Harbour at dawn')).toHaveText('1');
      // Away from the button: no hover or focus in the picture.
      await page.mouse.move(0, 0);
      await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
      await expect(card).toHaveScreenshot(`card-liked-${colorScheme}.png`, look);
    });

    test('the admin table', async ({ page }) => {
      await twoPictures(page);
      const admin = new AdminPage(page);
      await gotoHydrated(page, `${ownBase()}/admin`);
      await admin.signIn(ownToken);
      await expect(admin.row('Sunset over the dunes')).toBeVisible();
      await expect(page.getByRole('table')).toHaveScreenshot(`admin-table-${colorScheme}.png`, look);
    });
  });
}

test.describe('phone width', () => {
  test.use({ viewport: { width: 390, height: 844 }, colorScheme: 'light' });

  test('the gallery', async ({ page }) => {
    await twoPictures(page);
    await expect(page).toHaveScreenshot('gallery-phone.png', { ...look, mask: [page.locator('.live-indicator')] });
  });
});

test.describe('a picture that cannot be loaded', () => {
  test.use({ allowedConsoleErrors: [/status of 404 \(Not Found\)/] });

  test('leaves a placeholder of the same size naming it, not a broken image', async ({ page }) => {
    await startOwnServer(ownDataDir());
    await createOwnProduct('Harbour at dawn', imageUrl(ownBase(), 'harbour'));
    await createOwnProduct('Lost lighthouse', `${ownBase()}/no-such-picture.png`);
    const gallery = new GalleryPage(page);
    await expect(async () => {
      await gotoHydrated(page, `${ownBase()}/`);
      await expect(gallery.cards).toHaveCount(2, { timeout: 1_000 });
    }).toPass();
    const lost = gallery.card('Lost lighthouse').locator('.picture');
    const found = gallery.card('Harbour at dawn').locator('.picture');
    await expect.poll(() => lost.locator('img').evaluate((image: HTMLImageElement) => image.complete && image.naturalWidth === 0)).toBe(true);
    expect(await lost.boundingBox()).toMatchObject({ width: (await found.boundingBox())?.width, height: (await found.boundingBox())?.height });
    expect(await lost.locator('img').evaluate((element) => getComputedStyle(element, '::before').content)).toBe('"Lost lighthouse"');
    await expect(gallery.card('Lost lighthouse')).toHaveScreenshot('card-broken-image.png', look);
  });
});
