// A wake-up signal without a payload ("look again"): a site delivered, failed or left; availability changed; the
// federation paused. Everyone waiting when it fires wakes; nothing is kept for later waiters.

export class Pulse {
  private waiters: (() => void)[] = [];
  wait(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }
  fire(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }
}
