// The admin console as a page object for e2e tests: log in, enroll a site (reading the one-time token the page shows),
// start/pause, and read tables and chart series the way an operator sees them. Selectors live here only.

import type { Page } from 'playwright-core';

export interface ChartSeries {
  labels: string[];
  datasets: { label: string; data: (number | null)[] }[];
}

export class ConsolePage {
  constructor(
    readonly page: Page,
    readonly url: string,
  ) {}

  async open(): Promise<void> {
    await this.page.goto(this.url + '/');
    await this.page.locator('#login:not([hidden]), #app:not([hidden])').first().waitFor();
  }

  /** Submits the login form; resolves with the error text shown, or null once the console is live. */
  async login(token: string): Promise<string | null> {
    await this.page.fill('#token', token);
    await this.page.click('#login-form button[type=submit]');
    const outcome = await Promise.race([
      this.page.waitForSelector('#app:not([hidden])[data-socket=connected]').then(() => 'in' as const),
      this.page
        .waitForFunction(() => document.getElementById('login-error')?.textContent?.trim())
        .then(() => 'error' as const),
    ]);
    return outcome === 'in' ? null : ((await this.page.textContent('#login-error')) ?? '').trim();
  }

  /** Enrolls a site through the form; returns the one-time token and the browser enrollment link shown. */
  async enroll(name: string): Promise<{ token: string; link: string }> {
    const old = await this.page.textContent('#enroll-token').catch(() => null);
    await this.page.fill('#enroll-name', name);
    await this.page.click('#enroll-form button[type=submit]');
    await this.page.waitForFunction((prev) => {
      const t = document.getElementById('enroll-token')?.textContent;
      return !!t && t !== prev;
    }, old);
    return {
      token: ((await this.page.textContent('#enroll-token')) ?? '').trim(),
      link: (await this.page.getAttribute('#enroll-link', 'href')) ?? '',
    };
  }

  /** Waits until the Sites table shows the site with a status text matching `status` (e.g. /online, ready/). */
  async waitForSite(siteId: string, status: RegExp, timeout = 120_000): Promise<void> {
    await this.page.waitForFunction(
      ({ id, re }) =>
        new RegExp(re).test(
          document.querySelector(`#sites-body tr[data-site="${id}"] .badge`)?.textContent ?? '',
        ),
      { id: siteId, re: status.source },
      { timeout },
    );
  }

  async siteCells(siteId: string): Promise<string[]> {
    return this.page.locator(`#sites-body tr[data-site="${siteId}"] td`).allInnerTexts();
  }

  /** Fills the settings form (field key → text, e.g. {deadlineS: '240'}) and saves; resolves with the message shown. */
  async saveSettings(values: Record<string, string>): Promise<string> {
    const details = this.page.locator('#rounds details');
    if (!(await details.evaluate((d) => (d as HTMLDetailsElement).open)))
      await details.locator('summary').click();
    for (const [k, v] of Object.entries(values)) await this.page.fill(`#set-${k}`, v);
    await this.page.evaluate(() => (document.getElementById('message') as HTMLElement).replaceChildren());
    await this.page.click('#settings-form button[type=submit]');
    await this.page.waitForFunction(() => document.getElementById('message')?.textContent);
    return (await this.page.textContent('#message')) ?? '';
  }

  /** Revokes a site with the two clicks the table asks for; waits until its row says so. */
  async revoke(siteId: string): Promise<void> {
    const button = this.page.locator(`#sites-body tr[data-site="${siteId}"] button[data-action=revoke]`);
    await button.click();
    await button.click();
    await this.waitForSite(siteId, /revoked/);
  }

  async start(): Promise<void> {
    await this.page.click('#btn-start');
    await this.page.waitForSelector('#fed-state[data-state=running]');
  }

  async pause(): Promise<void> {
    await this.page.click('#btn-pause');
  }

  /** Waits for the versions table to show `versionId` (pushed by the live socket; the page is never reloaded). */
  async waitForVersion(versionId: string, timeout = 600_000): Promise<void> {
    await this.page.waitForSelector(`#versions-body tr[data-version="${versionId}"]`, { timeout });
  }

  async versionIds(): Promise<string[]> {
    return this.page
      .locator('#versions-body tr[data-version]')
      .evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.version ?? ''));
  }

  /** What a chart draws right now ('accuracy' | 'loss' | 'bytes'), from the canvas's data-series. */
  async chart(which: 'accuracy' | 'loss' | 'bytes'): Promise<ChartSeries> {
    const raw = await this.page.getAttribute(`#chart-${which}`, 'data-series');
    return JSON.parse(raw ?? '{"labels":[],"datasets":[]}') as ChartSeries;
  }

  /** Records every stage the live-round panel shows from now on (read back with recordedStages). */
  async recordStages(): Promise<void> {
    await this.page.evaluate(() => {
      const w = window as unknown as { __stages: string[] };
      w.__stages = [];
      const el = document.getElementById('current-round') as HTMLElement;
      new MutationObserver(() => {
        const s = el.dataset.stage ?? '';
        if (s && w.__stages[w.__stages.length - 1] !== s) w.__stages.push(s);
      }).observe(el, { attributes: true, attributeFilter: ['data-stage'] });
    });
  }

  recordedStages(): Promise<string[]> {
    return this.page.evaluate(() => (window as unknown as { __stages: string[] }).__stages);
  }

  /** A marker that a reload or navigation would wipe: set it, act, then check it is still there. */
  async markDocument(): Promise<void> {
    await this.page.evaluate(() => ((window as unknown as { __noReload: boolean }).__noReload = true));
  }

  stillSameDocument(): Promise<boolean> {
    return this.page.evaluate(() => (window as unknown as { __noReload?: boolean }).__noReload === true);
  }
}
