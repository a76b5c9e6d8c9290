// Every page, in both colour schemes, passes axe's WCAG 2.1 A and AA rules (colour contrast
// included): the gallery empty and full, liked and not, with and without JavaScript; the admin
// page signed out, signed in, and with an edit form showing a validation error.
import AxeBuilder from '@axe-core/playwright';
import type { Page } from '@playwright/test';
import { adminToken } from '../playwright.config';
import { imageUrl, uniqueTitle } from './fixtures/data';
import { gotoHydrated } from './fixtures/hydration';
import { killOwnServers, ownBase, ownDataDir, startOwnServer } from './fixtures/own-server';
import { expect, test } from './fixtures/test';

test.afterEach(killOwnServers);

/** Fails with axe's findings unless the page as it stands has none. */
async function expectNoViolations(page: Page, what: string): Promise<void> {
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  const found = results.violations.map((violation) => ({
    rule: violation.id,
    help: violation.help,
    nodes: violation.nodes.map((node) => `${node.target.join(' ')}: ${node.failureSummary ?? ''}`),
  }));
  expect(found, `axe violations on ${what}`).toEqual([]);
  // The check ran: it passed rules, colour contrast among them.
  expect(results.passes.map((rule) => rule.id)).toContain('color-contrast');
}

/** The contrast ratio (WCAG 2) of the like button's heart against the button behind it. axe
 *  leaves symbol characters such as ♡ out of its colour-contrast rule, so this one is measured
 *  here, from the colours the page computed. */
async function heartContrast(page: Page, title: string): Promise<number> {
  const button = page.getByRole('button', { name: `Like ${title}` });
  return button.evaluate((element) => {
    const channels = (color: string): number[] => {
      const numbers = color.match(/[\d.]+/g)?.map(Number) ?? [];
      // `color(srgb r g b)` gives 0–1 channels, `rgb(r, g, b)` 0–255.
      return color.startsWith('color(') ? numbers.slice(0, 3) : numbers.slice(0, 3).map((n) => n / 255);
    };
    const luminance = (color: string): number => {
      const [r, g, b] = channels(color).map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const heart = element.querySelector('.heart') ?? element;
    const front = luminance(getComputedStyle(heart).color);
    const back = luminance(getComputedStyle(element).backgroundColor);
    return (Math.max(front, back) + 0.05) / (Math.min(front, back) + 0.05);
  });
}

for (const colorScheme of ['light', 'dark'] as const) {
  test.describe(`${colorScheme} colour scheme`, () => {
    test.use({ colorScheme });

    test('the empty gallery', async ({ page }) => {
      await startOwnServer(ownDataDir());
      await gotoHydrated(page, `${ownBase()}/`);
      await expect(page.getByText('No pictures yet')).toBeVisible();
      await expectNoViolations(page, 'the empty gallery');
    });

    test('the gallery with pictures, liked and not', async ({ gallery, page, request, baseURL }) => {
      const liked = uniqueTitle('Liked');
      const other = uniqueTitle('Not liked');
      for (const title of [liked, other]) {
        const created = await request.post('/api/admin/products', {
          headers: { authorization: `Bearer ${adminToken}` },
          data: { title, image: imageUrl(baseURL) },
        });
        expect(created.status()).toBe(201);
      }
      await expect(async () => {
        await gallery.open();
        await expect(gallery.card(other)).toBeVisible({ timeout: 1_000 });
      }).toPass();
      // From the keyboard: pictures other tests add move the cards of this shared gallery.
      await gallery.likeButton(liked).press('Enter');
      await expect(gallery.likeButton(liked)).toHaveAttribute('aria-pressed', 'true');
      await expect(gallery.likeButton(other)).toHaveAttribute('aria-pressed', 'false');
      await page.mouse.move(0, 0);
      await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
      expect(await heartContrast(page, liked), 'the pressed heart').toBeGreaterThanOrEqual(4.5);
      expect(await heartContrast(page, other), 'the heart not pressed').toBeGreaterThanOrEqual(4.5);
      await expectNoViolations(page, 'the gallery');
    });

    test.describe('admin', () => {
    test('the admin page signed out, signed in, and an edit form with an error', async ({ admin, page, baseURL }) => {
      await admin.open();
      await expectNoViolations(page, 'the admin sign-in');
      await admin.signIn(adminToken);
      await expect(admin.signedIn).toBeVisible();
      const title = uniqueTitle('Checked');
      await admin.createProduct(title, imageUrl(baseURL));
      await expect(admin.row(title)).toBeVisible();
      await expectNoViolations(page, 'the admin page signed in');

      await page.getByRole('link', { name: `Edit ${title}` }).click();
      const form = page.getByRole('form', { name: `Edit ${title}` });
      await form.getByLabel('Image URL').fill('javascript:alert(1)');
      await form.getByRole('button', { name: 'Save' }).click();
      await expect(form.getByLabel('Image URL')).toHaveAttribute('aria-invalid', 'true');
      await expectNoViolations(page, 'an edit form with a validation error');
    });
    });

    test.describe('without JavaScript', () => {
      // axe needs a script of its own on the page, so JavaScript stays on; the app's script is
      // replaced by one that does nothing, leaving the page exactly as the server sent it.
      test.beforeEach(async ({ page }) => {
        await page.route(/\/pkg\/live-gallery\.[0-9A-Za-z_-]+\.js$/, (route) =>
          route.fulfill({ contentType: 'text/javascript', body: 'export default async function () {}\nexport function hydrate() {}\n' }),
        );
      });

      test('the gallery', async ({ page, request, baseURL }) => {
        const title = uniqueTitle('Static');
        const created = await request.post('/api/admin/products', {
          headers: { authorization: `Bearer ${adminToken}` },
          data: { title, image: imageUrl(baseURL) },
        });
        expect(created.status()).toBe(201);
        await expect(async () => {
          await page.goto('/');
          await expect(page.getByRole('heading', { name: title })).toBeVisible({ timeout: 1_000 });
        }).toPass();
        await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(0);
        await expectNoViolations(page, 'the gallery without JavaScript');
      });
    });
  });
}
