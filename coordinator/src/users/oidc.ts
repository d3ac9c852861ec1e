// OpenID Connect sign-in for the console (issue 21): the authorization code flow with PKCE, a state and a nonce,
// through openid-client (a maintained, certified relying-party library: discovery, the token request, and the ID
// token's signature, issuer, audience, expiry and nonce checks are its job, not ours). The identity provider says who
// the person is; the coordinator's user store still says what they may do: the claim named by --oidc-username-claim
// must name an existing, enabled user (created by an admin, with its role and projects), so an account at the
// provider never gains access to the coordinator by itself.
//
// The flow's transaction (state, nonce, PKCE verifier) travels in a short-lived HttpOnly cookie on the browser that
// started it, not in this process's memory: a coordinator cluster behind a load balancer may answer the callback
// from another process. It holds nothing a third party could use: the verifier only redeems a code the provider
// issues to this browser's login, and the state binds the callback to the browser that started it (login CSRF).

import * as oidc from 'openid-client';
import { FedloraError } from '@fedlora/shared/errors.ts';

export interface OidcSettings {
  /** the provider's issuer URL (its /.well-known/openid-configuration is read from there) */
  issuer: string;
  clientId: string;
  /** absent: a public client (PKCE only) */
  clientSecret?: string;
  /** where the provider sends the browser back: this coordinator's /auth/oidc/callback as the provider knows it */
  redirectUrl: string;
  /** the claim whose value is the coordinator username (default preferred_username) */
  usernameClaim: string;
  /** what the console's sign-in button says */
  label: string;
}

/** What a sign-in carries between its start and the provider's callback (the transaction cookie's content). */
export interface OidcTransaction {
  state: string;
  nonce: string;
  verifier: string;
}

/** The claims a provider proved about the person who signed in, and the username they map to. */
export interface OidcIdentity {
  username: string;
  subject: string;
  issuer: string;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/**
 * OIDC over plain http leaks codes and tokens to the network: refused, except to a provider on this machine's
 * loopback (a test issuer, or a provider reached through a local tunnel).
 */
function requireSecureIssuer(issuer: URL): boolean {
  if (issuer.protocol === 'https:') return false;
  if (issuer.protocol === 'http:' && LOOPBACK.has(issuer.hostname)) return true;
  throw new FedloraError('CONFIG_INVALID', `--oidc-issuer must be an https:// URL (http only on loopback), got ${issuer.href}`);
}

export class OidcLogin {
  private config: oidc.Configuration | null = null;
  private readonly issuer: URL;
  private readonly insecure: boolean;

  constructor(readonly settings: OidcSettings) {
    try {
      this.issuer = new URL(settings.issuer);
      new URL(settings.redirectUrl);
    } catch {
      throw new FedloraError('CONFIG_INVALID', `--oidc-issuer and the redirect URL must be absolute URLs (${settings.issuer}, ${settings.redirectUrl})`);
    }
    this.insecure = requireSecureIssuer(this.issuer);
  }

  /**
   * The provider's metadata, read on first use and kept: a provider that is down when the coordinator starts only
   * fails sign-ins (UNREACHABLE) until it is back, never the coordinator's start.
   */
  private async provider(): Promise<oidc.Configuration> {
    if (this.config) return this.config;
    const { clientId, clientSecret } = this.settings;
    try {
      this.config = await oidc.discovery(
        this.issuer,
        clientId,
        clientSecret,
        clientSecret === undefined ? oidc.None() : oidc.ClientSecretBasic(clientSecret),
        this.insecure ? { execute: [oidc.allowInsecureRequests], timeout: 10 } : { timeout: 10 },
      );
    } catch (err) {
      throw new FedloraError('UNREACHABLE', `cannot read the OpenID provider's configuration at ${this.issuer.href}: ${(err as Error).message}`, { cause: err });
    }
    return this.config;
  }

  /** The provider's authorization URL to send the browser to, and the transaction to keep until it returns. */
  async start(): Promise<{ url: string; transaction: OidcTransaction }> {
    const config = await this.provider();
    const transaction: OidcTransaction = { state: oidc.randomState(), nonce: oidc.randomNonce(), verifier: oidc.randomPKCECodeVerifier() };
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: this.settings.redirectUrl,
      scope: 'openid profile email',
      code_challenge: await oidc.calculatePKCECodeChallenge(transaction.verifier),
      code_challenge_method: 'S256',
      state: transaction.state,
      nonce: transaction.nonce,
    });
    return { url: url.href, transaction };
  }

  /**
   * The callback: checks the state against the transaction, redeems the code (with the PKCE verifier), checks the
   * ID token (openid-client), and reads the username claim (from the ID token, else from the userinfo endpoint:
   * providers often keep profile claims out of the ID token). UNAUTHORIZED when the provider refused or a check
   * failed, with the reason; the caller decides whether the username is a user.
   */
  async finish(callbackUrl: URL, transaction: OidcTransaction): Promise<OidcIdentity> {
    const config = await this.provider();
    // the provider's error answer (the person cancelled, or is not allowed to use this client)
    const error = callbackUrl.searchParams.get('error');
    if (error !== null) {
      const description = callbackUrl.searchParams.get('error_description');
      throw new FedloraError('UNAUTHORIZED', `the OpenID provider refused the sign-in: ${error}${description ? ` (${description})` : ''}`);
    }
    // the provider sends the browser to the redirect URL as registered; this process may see another host or scheme
    // behind a proxy, so the code and state are read from the request and checked against the registered URL
    const current = new URL(this.settings.redirectUrl);
    current.search = callbackUrl.search;
    let tokens;
    try {
      tokens = await oidc.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: transaction.verifier,
        expectedState: transaction.state,
        expectedNonce: transaction.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      throw new FedloraError('UNAUTHORIZED', `the OpenID sign-in did not check out: ${(err as Error).message}`, { cause: err });
    }
    const claims = tokens.claims();
    if (!claims) throw new FedloraError('UNAUTHORIZED', 'the OpenID provider answered without an ID token');
    const claim = this.settings.usernameClaim;
    let value: unknown = claims[claim];
    if (value === undefined && tokens.access_token) {
      try {
        value = (await oidc.fetchUserInfo(config, tokens.access_token, claims.sub))[claim];
      } catch (err) {
        throw new FedloraError('UNAUTHORIZED', `the OpenID provider's userinfo endpoint failed: ${(err as Error).message}`, { cause: err });
      }
    }
    if (typeof value !== 'string' || value === '')
      throw new FedloraError('UNAUTHORIZED', `the OpenID provider did not say the "${claim}" claim of ${claims.sub} (--oidc-username-claim)`);
    return { username: value.toLowerCase(), subject: claims.sub, issuer: claims.iss };
  }
}
