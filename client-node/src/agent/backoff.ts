// Reconnection backoff, moved to shared/ so the browser site uses the same implementation; re-exported here.

export * from '@fedlora/shared/site/backoff.ts';
