// Site-facing socket.io handlers. Every request is parsed with its schema at the edge, answered with an Ack, and
// every rejection is one log line (ids and codes only, never tokens or keys) with no state change. Until a socket
// has proved its identity (auth:challenge + auth:prove) it may only enroll or authenticate.

import { open } from 'node:fs/promises';
import { FedloraError, describeError } from '@fedlora/shared/errors.ts';
import { createChallenge, verifyChallenge } from '@fedlora/shared/crypto/envelope.ts';
import {
  ackError,
  ackOk,
  CLIENT_EVENTS,
  parseClientRequest,
  type ClientEventName,
  type ClientReply,
  type ClientRequest,
} from '@fedlora/shared/protocol/events.ts';
import type { Manifest } from '@fedlora/shared/protocol/manifest.ts';
import type { Logger } from '../log';
import type { Federation } from '../rounds/federation';
import type { AdapterStore } from '../registry/types';
import type { SiteRegistry } from '../sites/registry';
import type { Presence, SiteServer, SiteSocket } from './presence';

/** A base-model file the coordinator serves in chunks ('model:chunk'). */
export interface ModelFile {
  path: string;
  absPath: string;
  sha256: string;
  bytes: number;
}

export interface SiteHandlerDeps {
  sites: SiteRegistry;
  federation: Federation;
  store: AdapterStore;
  presence: Presence;
  manifest: () => Manifest;
  coordinatorId: string;
  modelFiles: readonly ModelFile[];
  log: Logger;
}

const OPEN_EVENTS = new Set<ClientEventName>(['site:enroll', 'auth:challenge', 'auth:prove']);
/** errors the round loop already logged */
const logged = new WeakSet<object>();

export function attachSiteHandlers(io: SiteServer, d: SiteHandlerDeps): void {
  io.on('connection', (socket) => {
    const on = <E extends ClientEventName>(
      event: E,
      fn: (req: ClientRequest<E>, siteId: string) => Promise<ClientReply<E>> | ClientReply<E>,
    ) => {
      socket.on(
        event as never,
        (async (raw: unknown, ack: unknown) => {
          if (typeof ack !== 'function') {
            d.log('request.rejected', {
              event,
              site: socket.data.siteId,
              code: 'BAD_MESSAGE',
              reason: 'no ack callback',
            });
            return;
          }
          try {
            const siteId = socket.data.siteId;
            if (!OPEN_EVENTS.has(event) && !siteId)
              throw new FedloraError('UNAUTHORIZED', 'authenticate first (auth:challenge, then auth:prove)');
            const req = parseClientRequest(event, raw);
            ack(ackOk(await fn(req, siteId ?? '')));
          } catch (err) {
            if (!(err instanceof Object && logged.has(err)))
              d.log('request.rejected', {
                event,
                site: socket.data.siteId,
                code: ackError(err).code,
                reason: describeError(err),
              });
            ack(ackError(err));
          }
        }) as never,
      );
    };

    on('site:enroll', async (req) => {
      const site = await d.sites.enroll(req.token, req);
      d.log('site.enrolled', { site: site.id, requested: req.siteId === site.id ? undefined : req.siteId });
      return { siteId: site.id };
    });

    on('auth:challenge', (req) => {
      const site = d.sites.get(req.siteId);
      if (!site || !site.enrolledAt) throw new FedloraError('UNKNOWN_SITE', 'no enrolled site with this id');
      if (site.revokedAt) throw new FedloraError('UNAUTHORIZED', 'this site was revoked');
      const challenge = createChallenge();
      socket.data.challenge = { siteId: req.siteId, challenge };
      return { challenge, coordinatorId: d.coordinatorId };
    });

    on('auth:prove', (req) => {
      const pending = socket.data.challenge;
      socket.data.challenge = undefined; // one attempt per challenge
      if (!pending || pending.siteId !== req.siteId)
        throw new FedloraError('UNAUTHORIZED', 'ask for a challenge for this site first (auth:challenge)');
      const key = d.sites.signingKey(req.siteId);
      if (!key) throw new FedloraError('UNKNOWN_SITE', 'no enrolled site with this id');
      if (
        !verifyChallenge(
          pending.challenge,
          { siteId: req.siteId, coordinatorId: d.coordinatorId },
          req.signature,
          key,
        )
      )
        throw new FedloraError(
          'BAD_SIGNATURE',
          'the challenge signature does not verify with the registered key',
        );
      socket.data.siteId = req.siteId;
      d.presence.authenticated(req.siteId, socket);
      d.log('site.authenticated', { site: req.siteId });
      return { manifest: d.manifest() };
    });

    on('site:ready', (req, siteId) => {
      d.presence.ready(siteId, req);
      d.log('site.ready', { site: siteId, examples: req.numExamples, backend: req.backend });
      return {};
    });

    on('update:upload', (req, siteId) => {
      const key = d.sites.signingKey(siteId);
      if (!key) throw new FedloraError('UNAUTHORIZED', 'this site is no longer enrolled');
      try {
        d.federation.upload(siteId, key, req);
      } catch (err) {
        if (err instanceof Object) logged.add(err);
        throw err;
      }
      return {};
    });

    on('round:fail', (req, siteId) => {
      d.federation.reportFailure(siteId, req);
      return {};
    });

    on('adapter:fetch', async (req) => {
      const id = req.versionId === 'latest' ? d.store.currentId() : req.versionId;
      const v = id ? d.store.get(id) : undefined;
      if (!v) throw new FedloraError('NOT_FOUND', 'no such version');
      return { versionId: v.id, adapter: await d.store.loadNative(v.id), adapterSha256: v.sha256 };
    });

    on('model:chunk', async (req) => {
      const f = d.modelFiles.find((m) => m.path === req.path);
      if (!f) throw new FedloraError('NOT_FOUND', 'not a file of the manifest');
      if (req.offset > f.bytes)
        throw new FedloraError('BAD_MESSAGE', `offset is past the end of the file (${f.bytes} bytes)`);
      const n = Math.min(req.length, f.bytes - req.offset);
      const data = new Uint8Array(n);
      const fh = await open(f.absPath, 'r');
      try {
        await fh.read(data, 0, n, req.offset);
      } finally {
        await fh.close();
      }
      return { path: f.path, offset: req.offset, totalBytes: f.bytes, data };
    });

    socket.onAny((event: string, ...args: unknown[]) => {
      if (Object.hasOwn(CLIENT_EVENTS, event)) return;
      d.log('request.rejected', {
        event: event.slice(0, 64),
        site: socket.data.siteId,
        code: 'BAD_MESSAGE',
        reason: 'unknown event',
      });
      const ack = args.at(-1);
      if (typeof ack === 'function') ack(ackError(new FedloraError('BAD_MESSAGE', 'unknown event')));
    });

    socket.on('disconnect', () => {
      const siteId = socket.data.siteId;
      if (siteId && d.presence.left(siteId, socket)) {
        d.log('site.disconnected', { site: siteId });
        d.federation.siteLeft(siteId);
      }
    });
  });
}

export type { SiteSocket };
