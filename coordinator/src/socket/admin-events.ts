// The '/admin' socket.io namespace's contract (coordinator → web console), declared once. Connect with
// `io(url + '/admin', { auth: { token: ADMIN_TOKEN } })`; a wrong token fails the connection with "UNAUTHORIZED".

import type { RoundStage } from '@fedlora/shared/protocol/messages.ts';
import type { RoundRecord, VersionRecord } from '../registry/types';
import type { FederationState } from '../rounds/federation';
import type { RoundTrigger } from '../rounds/schedule';
import type { SiteStatus } from './presence';

export interface AdminServerEvents {
  /** a round entered a stage */
  'round:stage': (e: { round: number; roundId: string; stage: RoundStage }) => void;
  /** an upload was accepted or rejected (code) */
  upload: (e: { round: number; siteId: string; accepted: boolean; code?: string }) => void;
  /** a round ended (its history record, as in GET /api/rounds) */
  'round:end': (r: RoundRecord) => void;
  /** a new version was stored (as in GET /api/versions) */
  'version:new': (v: VersionRecord) => void;
  /** a decision changed an existing version (approve, reject, promote, early-stop restore): its record now */
  'version:decided': (v: VersionRecord) => void;
  /** a site came online, became ready, or left */
  'site:status': (s: SiteStatus) => void;
  /** the federation started, paused or finished */
  'federation:state': (e: { state: FederationState; reason?: string }) => void;
  /** a scheduled or data-triggered round could not start now (a round was running, or the federation paused) */
  'round:skipped': (e: { trigger: RoundTrigger; reason: string }) => void;
}
