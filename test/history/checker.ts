/**
 * Invariants over a recorded history (see recorder.ts), in real-time order on one clock:
 * an operation A "completed before" B when A's reply arrived before B was sent.
 *
 * - one reply per msg_id, and no reply to a request never sent;
 * - error 11 only while the store was away (plus a recovery allowance), no other error;
 * - nothing succeeds on a session after an end of it completed (destroy, regenerate,
 *   a user-wide revoke sent after the session was acknowledged, its TTL);
 * - an acknowledged session stays valid until something could have ended it;
 * - one `token_refreshed` per refresh token; nothing of a token family succeeds after
 *   its revocation completed (revoke_token of one of its refresh tokens, a detected
 *   reuse, the end of the session it is bound to); a revoked access token stays refused;
 * - every subscriber gets exactly one `session_expired` per end, within the bound, and
 *   none for a session that did not end.
 */
import type { Body, History, Op } from './recorder.js';

export interface CheckOptions {
  /** Allowed lateness of a `session_expired` push after the end completed, ms. */
  pushBoundMs: number;
  /** Error 11 is allowed this long after an outage ended, ms. */
  recoveryMs: number;
  /** When the check is taken: an end this long ago or more must have reached its subscribers. */
  checkAt: number;
}

export interface Verdict {
  /** What broke an invariant; an acknowledged write found missing starts with `lost:`. */
  violations: string[];
  figures: Record<string, number>;
}

interface Session {
  id: string;
  user: string;
  created: Op;
  /** No later than this the session ended by its TTL. */
  deadline: number;
  /** Not before this did the session end by its TTL. */
  earliestTtlEnd: number;
}

const ok = (op: Op, type: string) => op.reply?.type === type;
const errorCode = (op: Op) => (op.reply?.type === 'error' ? (op.reply.code as number) : undefined);
const CLOCK_SLACK_MS = 50;

export function check(h: History, o: CheckOptions): Verdict {
  const violations: string[] = [];
  const bad = (msg: string) => {
    if (violations.length < 50) violations.push(msg);
  };
  const figures: Record<string, number> = { ops: h.ops.length, pushes: h.pushes.length };
  const done = h.ops.filter((op) => op.reply !== undefined && op.complete !== undefined) as (Op & { reply: Body; complete: number })[];

  // Replies: exactly one per request.
  for (const op of h.ops) if (op.replies !== 1) bad(`op ${op.id} (${op.req.type} on node ${op.node}) got ${op.replies} replies`);
  for (const s of h.strays) bad(`node ${s.node} answered a request never sent: ${JSON.stringify(s.body).slice(0, 120)}`);

  // Errors: 11 only around an outage; nothing else.
  let unavailable = 0;
  for (const op of done) {
    const code = errorCode(op);
    if (code === undefined) continue;
    if (code === 11 && h.outages.some(([a, b]) => op.complete >= a && op.invoke <= b + o.recoveryMs)) {
      unavailable++;
      continue;
    }
    bad(`op ${op.id} (${op.req.type} on node ${op.node}) answered error ${code} (${String(op.reply.text)}) outside an outage`);
  }
  figures.error11 = unavailable;

  // Sessions, from their acknowledgements.
  const sessions = new Map<string, Session>();
  for (const op of done) {
    if (ok(op, 'session_created')) {
      const id = op.reply.session_id as string;
      const ms = (op.reply.expires_in as number) * 1000;
      sessions.set(id, { id, user: op.req.user_id as string, created: op, deadline: op.complete + ms, earliestTtlEnd: op.invoke + ms - 1000 });
    }
  }
  for (const op of [...done].sort((a, b) => a.complete - b.complete)) {
    if (!ok(op, 'session_regenerated')) continue;
    const old = sessions.get(op.req.old_session_id as string);
    if (old === undefined) continue;
    const id = op.reply.new_session_id as string;
    const ms = (op.reply.expires_in as number) * 1000;
    sessions.set(id, { id, user: old.user, created: op, deadline: op.complete + ms, earliestTtlEnd: op.invoke + ms - 1000 });
  }
  const sessionOf = (op: Op) => sessions.get((op.req.session_id ?? op.req.old_session_id) as string);
  const endOps = new Map<string, Op[]>(); // every operation that could have ended the session
  const endAt = new Map<string, number>(); // when an end of it had certainly completed
  for (const s of sessions.values()) {
    endOps.set(s.id, []);
    endAt.set(s.id, s.deadline + CLOCK_SLACK_MS);
  }
  const byUser = new Map<string, Session[]>();
  for (const s of sessions.values()) byUser.set(s.user, [...(byUser.get(s.user) ?? []), s]);
  const ended = (s: Session, at: number) => endAt.set(s.id, Math.min(endAt.get(s.id)!, at));
  for (const op of h.ops) {
    const t = op.req.type;
    if (t === 'destroy_session' || t === 'regenerate_session') {
      const s = sessionOf(op);
      if (s === undefined) continue;
      endOps.get(s.id)!.push(op);
      if (op.complete !== undefined && (ok(op, 'session_destroyed') || ok(op, 'session_regenerated'))) ended(s, op.complete);
    } else if (t === 'revoke_user_sessions') {
      for (const s of byUser.get(op.req.user_id as string) ?? []) {
        // A revoke answered before the login was sent cannot have ended it.
        if (op.complete === undefined || op.complete > s.created.invoke) endOps.get(s.id)!.push(op);
        // A revoke sent after the login was acknowledged must cover it.
        if (op.complete !== undefined && ok(op, 'sessions_revoked') && op.invoke > s.created.complete!) ended(s, op.complete);
      }
    }
  }
  let falseValidChecked = 0;
  let lostChecked = 0;
  for (const op of done) {
    const s = sessionOf(op);
    if (s === undefined || op === s.created) continue;
    const success =
      ok(op, 'session_valid') || ok(op, 'subscribed') || ok(op, 'session_regenerated') || (op.req.type === 'exchange_session' && ok(op, 'token_generated'));
    const end = endAt.get(s.id)!;
    if (op.invoke > end) {
      falseValidChecked++;
      if (success) bad(`${op.req.type} op ${op.id} on node ${op.node} succeeded ${Math.round(op.invoke - end)} ms after its session ended`);
    }
    if (op.req.type === 'validate_session' && errorCode(op) !== 11 && op.invoke > s.created.complete! && op.complete < s.earliestTtlEnd - 200) {
      const couldHaveEnded = endOps.get(s.id)!.some((e) => e.invoke < op.complete);
      if (!couldHaveEnded) {
        lostChecked++;
        if (!success) bad(`lost: validate op ${op.id} on node ${op.node}: an acknowledged session was ${op.reply.type}, nothing could have ended it`);
      }
    }
  }
  figures.sessions = sessions.size;
  figures.sessionEndsCompleted = [...sessions.values()].filter((s) => endAt.get(s.id)! < s.deadline).length;
  figures.checkedAfterEnd = falseValidChecked;
  figures.checkedStillValid = lostChecked;

  // Token families.
  let families = 0;
  const familyOf = new Map<string, number>(); // token -> family
  const boundTo = new Map<number, Session>();
  const issuedBy = new Map<string, Op>(); // access token -> op that issued it
  const sorted = [...done].sort((a, b) => a.complete - b.complete);
  for (const op of sorted) {
    let family: number | undefined;
    if (ok(op, 'token_generated')) {
      family = ++families;
      if (op.req.type === 'exchange_session') {
        const s = sessionOf(op);
        if (s) boundTo.set(family, s);
      }
    } else if (ok(op, 'token_refreshed')) family = familyOf.get(op.req.refresh_token as string);
    if (family === undefined) continue;
    familyOf.set(op.reply.refresh_token as string, family);
    familyOf.set(op.reply.access_token as string, family);
    issuedBy.set(op.reply.access_token as string, op);
  }
  const refreshes = new Map<string, Op[]>();
  for (const op of h.ops)
    if (op.req.type === 'refresh_token') refreshes.set(op.req.refresh_token as string, [...(refreshes.get(op.req.refresh_token as string) ?? []), op]);
  const familyRevokedAt = new Map<number, number>();
  const revokeFamily = (f: number, at: number) => familyRevokedAt.set(f, Math.min(familyRevokedAt.get(f) ?? Infinity, at));
  const accessRevokedAt = new Map<string, number>();
  const familyThreats = new Map<number, Op[]>(); // operations that could have revoked the family
  const threat = (f: number, op: Op) => familyThreats.set(f, [...(familyThreats.get(f) ?? []), op]);
  let rotations = 0;
  for (const [token, ops] of refreshes) {
    const f = familyOf.get(token);
    const wins = ops.filter((op) => ok(op, 'token_refreshed'));
    rotations += wins.length;
    if (wins.length > 1) bad(`refresh token rotated ${wins.length} times (ops ${wins.map((w) => w.id).join(', ')})`);
    if (f === undefined) continue;
    if (ops.length > 1) for (const op of ops) threat(f, op);
    if (wins.length > 0) for (const op of ops) if (op.complete !== undefined && ok(op, 'token_invalid')) revokeFamily(f, op.complete);
  }
  for (const op of h.ops) {
    if (op.req.type !== 'revoke_token') continue;
    const token = op.req.token as string;
    const f = familyOf.get(token);
    if (f === undefined) continue;
    const isAccess = issuedBy.has(token) && token.includes('.') && token.split('.').length === 3;
    if (isAccess) {
      if (op.complete !== undefined && ok(op, 'token_revoked')) accessRevokedAt.set(token, Math.min(accessRevokedAt.get(token) ?? Infinity, op.complete));
    } else {
      threat(f, op);
      if (op.complete !== undefined && ok(op, 'token_revoked')) revokeFamily(f, op.complete);
    }
  }
  for (const [f, s] of boundTo) {
    revokeFamily(f, endAt.get(s.id)!);
    for (const op of endOps.get(s.id)!) threat(f, op);
  }
  let tokenChecks = 0;
  let tokenStillValid = 0;
  for (const op of done) {
    if (op.req.type === 'refresh_token') {
      const f = familyOf.get(op.req.refresh_token as string);
      if (f !== undefined && op.invoke > (familyRevokedAt.get(f) ?? Infinity)) {
        tokenChecks++;
        if (ok(op, 'token_refreshed'))
          bad(`refresh op ${op.id} on node ${op.node} rotated a family ${Math.round(op.invoke - familyRevokedAt.get(f)!)} ms after it was revoked`);
      }
    } else if (op.req.type === 'verify_token') {
      const token = op.req.token as string;
      const f = familyOf.get(token);
      if (f === undefined) continue;
      const dead = Math.min(familyRevokedAt.get(f) ?? Infinity, accessRevokedAt.get(token) ?? Infinity);
      if (op.invoke > dead) {
        tokenChecks++;
        if (ok(op, 'token_valid')) bad(`verify op ${op.id} on node ${op.node} accepted a token ${Math.round(op.invoke - dead)} ms after its revocation`);
      }
      const issued = issuedBy.get(token)!;
      const threatened =
        (familyThreats.get(f) ?? []).some((t) => t.invoke < op.complete) ||
        h.ops.some((t) => t.req.type === 'revoke_token' && t.req.token === token && t.invoke < op.complete) ||
        (boundTo.has(f) && boundTo.get(f)!.earliestTtlEnd - 200 < op.complete);
      if (!threatened && errorCode(op) !== 11 && op.invoke > issued.complete!) {
        tokenStillValid++;
        if (!ok(op, 'token_valid'))
          bad(`lost: verify op ${op.id} on node ${op.node}: an issued token was ${op.reply.type} (${String(op.reply.error)}), nothing could have revoked it`);
      }
    }
  }
  figures.families = families;
  figures.rotations = rotations;
  figures.checkedAfterRevocation = tokenChecks;
  figures.checkedTokenStillValid = tokenStillValid;

  // Pushes: exactly one session_expired per (node, subscriber, session) whose session ended.
  const subs = new Map<string, { first: Op; s: Session }>();
  for (const op of done) {
    if (!ok(op, 'subscribed')) continue;
    const s = sessionOf(op)!;
    const key = `${op.node}|${op.src}|${s.id}`;
    if (!subs.has(key)) subs.set(key, { first: op, s });
  }
  const got = new Map<string, number[]>();
  for (const p of h.pushes) {
    if (p.body.type !== 'session_expired') continue;
    const key = `${p.node}|${p.dest}|${String(p.body.session_id)}`;
    got.set(key, [...(got.get(key) ?? []), p.at]);
    // A subscribe racing the end may be told of the end before it is answered session_invalid.
    const racing = h.ops.some(
      (op) => op.node === p.node && op.src === p.dest && op.req.type === 'subscribe_session' && op.req.session_id === p.body.session_id && op.invoke < p.at,
    );
    if (!subs.has(key) && !racing) bad(`session_expired pushed to node ${p.node} ${p.dest} for a session it never subscribed to`);
  }
  const lateness: number[] = [];
  let inOutage = 0;
  for (const [key, { first, s }] of subs) {
    const arrivals = got.get(key) ?? [];
    const definite = Math.min(endAt.get(s.id)!, s.deadline);
    const endedInRun = endAt.get(s.id)! < o.checkAt - o.pushBoundMs;
    const ambiguous = endOps.get(s.id)!.length > 0 || s.earliestTtlEnd < o.checkAt;
    if (arrivals.length > 1) bad(`${arrivals.length} session_expired pushes to one subscriber for one end (${key.split('|').slice(0, 2).join(' ')})`);
    if (endedInRun && arrivals.length === 0) bad(`no session_expired to node ${first.node} ${first.src} for a session that ended`);
    if (!endedInRun && !ambiguous && arrivals.length > 0) bad(`session_expired to node ${first.node} ${first.src} for a session that never ended`);
    if (endedInRun && arrivals.length > 0) {
      const from = Math.max(definite, first.complete!);
      const late = arrivals[0]! - from;
      lateness.push(late);
      // An end just before or during an outage may reach other nodes only once the store is back.
      const outage = h.outages.find(([a, b]) => from > a - 1000 && from < b);
      if (outage !== undefined) inOutage++;
      const bound = outage === undefined ? o.pushBoundMs : outage[1] + o.recoveryMs - from;
      if (late > bound) bad(`session_expired ${Math.round(late)} ms after the end (bound ${o.pushBoundMs} ms)`);
    }
  }
  lateness.sort((a, b) => a - b);
  figures.subscriptions = subs.size;
  figures.pushesChecked = lateness.length;
  figures.pushesForEndsDuringOutage = inOutage;
  figures.pushLatenessP50Ms = Math.round(lateness[Math.floor(lateness.length / 2)] ?? 0);
  figures.pushLatenessMaxMs = Math.round(lateness[lateness.length - 1] ?? 0);
  figures.violations = violations.length;
  return { violations, figures };
}
