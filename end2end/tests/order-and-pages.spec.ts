// The gallery a page at a time, in the order the visitor picks: newest first or most liked, more
// as they scroll (a link without JavaScript), every product once, live counts moving pictures.
import { imageUrl } from './fixtures/data';
import { GalleryPage } from './fixtures/gallery-page';
import { gotoHydrated } from './fixtures/hydration';
import { createOwnProduct, killOwnServers, ownBase, ownDataDir, ownVisitor, startOwnServer } from './fixtures/own-server';
import { expect, test } from './fixtures/test';

test.afterEach(killOwnServers);

/** Starts a server of this test's own with `count` products titled "Picture 1"…; their ids. */
async function galleryOf(count: number): Promise<number[]> {
  await startOwnServer(ownDataDir());
  const ids = [];
  for (let n = 1; n <= count; n++) ids.push(await createOwnProduct(`Picture ${n}`, imageUrl(ownBase())));
  // Wait until the gallery has them all.
  await expect(async () => {
    const last = await (await fetch(`${ownBase()}/api/products?limit=1`)).json();
    expect(last.items[0]?.title).toBe(`Picture ${count}`);
  }).toPass();
  return ids;
}

/** `visitors` new visitors like product `id`. */
async function like(id: number, visitors: number): Promise<void> {
  for (let n = 0; n < visitors; n++) {
    const liked = await fetch(`${ownBase()}/api/products/${id}/like`, { method: 'POST', headers: { cookie: await ownVisitor() } });
    expect(liked.status).toBe(200);
  }
}

/** The titles of the cards, in page order. */
async function titles(gallery: GalleryPage): Promise<string[]> {
  return gallery.cards.getByRole('heading').allTextContents();
}

test('newest first, a page at a time, the rest loading as the visitor scrolls', async ({ page }) => {
  await galleryOf(60);
  const gallery = new GalleryPage(page);
  await gotoHydrated(page, `${ownBase()}/`);
  await expect(gallery.cards).toHaveCount(48);
  expect((await titles(gallery))[0]).toBe('Picture 60');
  await expect(page.getByRole('link', { name: 'Newest' })).toHaveAttribute('aria-current', 'true');

  await page.getByRole('link', { name: 'More pictures' }).scrollIntoViewIfNeeded();
  await expect(gallery.cards).toHaveCount(60);
  const shown = await titles(gallery);
  expect(shown).toEqual(Array.from({ length: 60 }, (_, n) => `Picture ${60 - n}`));
  await expect(page.getByRole('link', { name: 'More pictures' })).toHaveCount(0);
});

test('most liked first; a picture that gains likes moves up, even from a page not loaded', async ({ page }) => {
  const ids = await galleryOf(50);
  await like(ids[2], 2);
  await like(ids[1], 1);
  const gallery = new GalleryPage(page);
  await gotoHydrated(page, `${ownBase()}/?sort=likes`);
  await expect(page.getByRole('link', { name: 'Most liked' })).toHaveAttribute('aria-current', 'true');
  await expect(gallery.cards).toHaveCount(48);
  // The likes reach the gallery through the catalog; the open page follows them.
  await expect(async () => {
    expect((await titles(gallery)).slice(0, 3)).toEqual(['Picture 3', 'Picture 2', 'Picture 1']);
  }).toPass();
  await expect(page.getByRole('status')).toHaveText('live');

  // Ties go by id, so Picture 50 is on the page not loaded yet; three likes put it first.
  await expect(gallery.card('Picture 50')).toHaveCount(0);
  await like(ids[49], 3);
  await expect(async () => {
    expect((await titles(gallery)).slice(0, 3)).toEqual(['Picture 50', 'Picture 3', 'Picture 2']);
  }).toPass();
  await expect(gallery.likeCount('Picture 50')).toHaveText('3');

  // Scrolling on brings the rest, each picture once.
  await page.getByRole('link', { name: 'More pictures' }).scrollIntoViewIfNeeded();
  await expect(gallery.cards).toHaveCount(50);
  expect(new Set(await titles(gallery)).size).toBe(50);
});

test('pictures moving up above the visitor leave the part they are reading where it is', async ({ page }) => {
  const ids = await galleryOf(60);
  const gallery = new GalleryPage(page);
  await page.setViewportSize({ width: 1280, height: 900 });
  await gotoHydrated(page, `${ownBase()}/?sort=likes`);
  await expect(page.getByRole('status')).toHaveText('live');
  const reading = gallery.card('Picture 30');
  await reading.evaluate((card) => card.scrollIntoView({ block: 'center' }));
  await expect(reading).toBeInViewport();
  const before = await reading.boundingBox();
  const scrolled = await page.evaluate(() => window.scrollY);

  // Two pictures from below the visitor and one from above climb to the top.
  await like(ids[44], 2);
  await like(ids[2], 1);
  await like(ids[40], 3);
  await expect(async () => {
    expect((await titles(gallery)).slice(0, 3)).toEqual(['Picture 41', 'Picture 45', 'Picture 3']);
  }).toPass();
  // Rows above stay full, so the rows in view stay put: cards move along them, not the page.
  expect(await page.evaluate(() => window.scrollY)).toBe(scrolled);
  await expect(reading).toBeInViewport();
  expect((await reading.boundingBox())?.y).toBeCloseTo(before?.y ?? -1, 0);
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the order is a link and the next page is a link', async ({ page }) => {
    await galleryOf(50);
    const gallery = new GalleryPage(page);
    await page.goto(`${ownBase()}/`);
    await expect(gallery.cards).toHaveCount(48);
    await page.getByRole('link', { name: 'More pictures' }).click();
    await expect(page).toHaveURL(/after=/);
    expect(await titles(gallery)).toEqual(['Picture 2', 'Picture 1']);
    await expect(page.getByRole('link', { name: 'More pictures' })).toHaveCount(0);

    await page.getByRole('link', { name: 'Most liked' }).click();
    await expect(page).toHaveURL(/sort=likes/);
    expect((await titles(gallery)).slice(0, 2)).toEqual(['Picture 1', 'Picture 2']);

    // A like posted from this page comes back to this page, in its order.
    await gallery.likeButton('Picture 2').click();
    await expect(page).toHaveURL(/\/\?sort=likes$/);
    await expect(gallery.likeButton('Picture 2')).toHaveAttribute('aria-pressed', 'true');
  });
});
