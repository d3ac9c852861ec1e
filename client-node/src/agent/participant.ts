// The round core moved to shared/ so the browser site runs the same implementation; re-exported for the agent's users.

export * from '@fedlora/shared/site/participant.ts';
