// A visitor likes a picture once, keeps the like across reloads, and can take it back; with and
// without JavaScript.
import type { APIRequestContext } from '@playwright/test';
import { adminToken } from '../playwright.config';
import { imageUrl, uniqueTitle } from './fixtures/data';
import { expect, test } from './fixtures/test';

/** Creates a product through the admin API and waits until the gallery has it. */
async function productInGallery(request: APIRequestContext, baseURL: string | undefined, what: string): Promise<string> {
  const title = uniqueTitle(what);
  const created = await request.post('/api/admin/products', {
    headers: { authorization: `Bearer ${adminToken}` },
    data: { title, image: imageUrl(baseURL) },
  });
  expect(created.status()).toBe(201);
  await expect(async () => {
    // The first page, newest first: a product just made is on it.
    const page = await (await request.get('/api/products')).json();
    expect(page.items.map((p: { title: string }) => p.title)).toContain(title);
  }).toPass();
  return title;
}

test('like, keep it after a reload, cannot like twice, then unlike', async ({ gallery, page, request, baseURL }) => {
  const title = await productInGallery(request, baseURL, 'Meadow');
  await gallery.open();
  const button = gallery.likeButton(title);
  await expect(button).toHaveAttribute('aria-pressed', 'false');
  await expect(gallery.likeCount(title)).toHaveText('0');

  await button.click();
  await expect(button).toHaveAttribute('aria-pressed', 'true');
  await expect(gallery.likeCount(title)).toHaveText('1');

  // The count in the gallery comes back through the catalog: reload until it is there.
  await expect(async () => {
    await gallery.open();
    await expect(gallery.likeCount(title)).toHaveText('1', { timeout: 500 });
  }).toPass();
  await expect(button).toHaveAttribute('aria-pressed', 'true');

  // Pressing a pressed button takes the like back: a second like is impossible from the page.
  await button.click();
  await expect(button).toHaveAttribute('aria-pressed', 'false');
  await expect(gallery.likeCount(title)).toHaveText('0');
  await expect(page.getByRole('alert')).toHaveCount(0);
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the like button is a form that works', async ({ gallery, request, baseURL }) => {
    const title = await productInGallery(request, baseURL, 'Orchard');
    await gallery.page.goto('/');
    await gallery.likeButton(title).click();
    await expect(async () => {
      await gallery.page.goto('/');
      await expect(gallery.likeButton(title)).toHaveAttribute('aria-pressed', 'true', { timeout: 500 });
      await expect(gallery.likeCount(title)).toHaveText('1', { timeout: 500 });
    }).toPass();
  });
});
