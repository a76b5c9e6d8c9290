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
  await otherGallery.likeButton(title).click();
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
