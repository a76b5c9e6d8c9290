// Every open page sees likes and product changes without a reload.
import type { APIRequestContext } from '@playwright/test';
import { adminToken } from '../playwright.config';
import { imageUrl, uniqueTitle } from './fixtures/data';
import { GalleryPage } from './fixtures/gallery-page';
import { expect, test } from './fixtures/test';

const admin = { authorization: `Bearer ${adminToken}` };

async function createProduct(request: APIRequestContext, baseURL: string | undefined, title: string): Promise<number> {
  const created = await request.post('/api/admin/products', { headers: admin, data: { title, image: imageUrl(baseURL) } });
  expect(created.status()).toBe(201);
  return (await created.json()).id;
}

test('a like in one browser shows in another without a reload', async ({ browser, gallery, request, baseURL }) => {
  const title = uniqueTitle('Canyon');
  await createProduct(request, baseURL, title);
  await expect(async () => {
    await gallery.open();
    await expect(gallery.card(title)).toBeVisible({ timeout: 500 });
  }).toPass();
  await expect(gallery.page.getByRole('status')).toHaveText('live');

  const other = await browser.newContext();
  const otherGallery = new GalleryPage(await other.newPage());
  await otherGallery.open();
  await expect(otherGallery.page.getByRole('status')).toHaveText('live');
  // Pressed from the keyboard: other tests add pictures to this shared gallery, newest first, and
  // a card can move between the pointer's aim and its click.
  await otherGallery.likeButton(title).press('Enter');
  await expect(otherGallery.likeCount(title)).toHaveText('1');

  await expect(gallery.likeCount(title)).toHaveText('1');
  await expect(gallery.likeButton(title)).toHaveAttribute('aria-pressed', 'false');
  await other.close();
});

test('a product created or deleted by the admin appears and vanishes in an open gallery', async ({ gallery, request, baseURL }) => {
  await gallery.open();
  await expect(gallery.page.getByRole('status')).toHaveText('live');
  const title = uniqueTitle('Volcano');
  const id = await createProduct(request, baseURL, title);
  await expect(gallery.card(title)).toBeVisible();

  const deleted = await request.delete(`/api/admin/products/${id}`, { headers: admin });
  expect(deleted.status()).toBe(204);
  await expect(gallery.card(title)).toHaveCount(0);
});

test.describe('a count that changes live', () => {
  /** Opens the gallery on a new product and records the animations its counts start; then has
   *  another visitor like the product and waits until the page shows the count. */
  async function likedElsewhere(gallery: GalleryPage, request: APIRequestContext, baseURL: string | undefined): Promise<string> {
    const title = uniqueTitle('Lagoon');
    const id = await createProduct(request, baseURL, title);
    await expect(async () => {
      await gallery.open();
      await expect(gallery.card(title)).toBeVisible({ timeout: 500 });
    }).toPass();
    await expect(gallery.page.getByRole('status')).toHaveText('live');
    // Only this card's: other tests change counts of other cards of this shared gallery.
    await gallery.page.evaluate((id) => {
      const started: string[] = [];
      (window as unknown as { started: string[] }).started = started;
      document.addEventListener('animationstart', (event) => {
        if ((event.target as Element).closest(`[data-product-id="${id}"]`)) started.push(event.animationName);
      });
    }, id);
    const visitor = await request.get('/api/products');
    const cookie = (visitor.headers()['set-cookie'] ?? '').split(';')[0];
    expect((await request.post(`/api/products/${id}/like`, { headers: { cookie } })).status()).toBe(200);
    await expect(gallery.likeCount(title)).toHaveText('1');
    return title;
  }

  const started = (gallery: GalleryPage) => gallery.page.evaluate(() => (window as unknown as { started: string[] }).started);

  test('is announced politely and highlighted for a moment', async ({ gallery, request, baseURL }) => {
    const title = await likedElsewhere(gallery, request, baseURL);
    // Screen readers announce the count with its word ("1 like"), without interrupting.
    const region = gallery.card(title).locator('[aria-live]');
    await expect(region).toHaveAttribute('aria-live', 'polite');
    await expect(region).toHaveText('1 like');
    await expect(gallery.likeCount(title)).toHaveClass(/changed-/);
    await expect.poll(() => started(gallery)).toEqual([expect.stringMatching(/^count-changed-/)]);
  });

  test.describe('for a visitor who asks for less motion', () => {
    test.use({ reducedMotion: 'reduce' });

    test('changes without an animation', async ({ gallery, request, baseURL }) => {
      const title = await likedElsewhere(gallery, request, baseURL);
      await expect(gallery.likeCount(title)).toHaveClass(/changed-/);
      // The change is styled (the class is set) and a frame has been drawn since: no animation.
      await gallery.page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
      expect(await started(gallery)).toEqual([]);
    });
  });
});
