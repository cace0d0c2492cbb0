/**
 * ChatConnection: one authenticated gRPC-Web connection to chat.ChatService.
 *
 * - `start()` lists the caller's groups, then keeps ONE `Subscribe` stream open for all of
 *   them. When the stream drops (network, pod restart, "fell too far behind") it reconnects
 *   with exponential backoff and `positions` (last seq / last update seq per group), so the
 *   server replays what was missed: no gap, no duplicate.
 * - Unary helpers for everything else. `sendMessage` always carries a `client_msg_id` and
 *   retries transient failures with the same id (the server stores it once).
 *
 * Browsers cannot write to a stream over gRPC-Web (no client or bidi streaming), which is why
 * sending is a unary call and receiving is the server stream.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import {
  ChatService,
  GroupPositionSchema,
  MessageType,
  type Attachment,
  type ChatEvent,
  type Group,
  type MarkUnreadResponse,
  type MessageHistoryResponse,
  type MessageResponse,
  type ModerationAction,
  type ModerationAction_Kind,
  type ReactionResponse,
  type ReadReceiptsResponse,
  type SearchMessagesResponse,
  type ThreadReadResponse,
  type ThreadResponse,
  type User,
} from "../gen/chat_pb.js";
import { backoffDelay, DEFAULT_BACKOFF, sleep, type BackoffOptions } from "./backoff.js";
import { decodeToken, type TokenIdentity } from "./jwt.js";
import { defaultPositionStore, type Position, type PositionStore } from "./positions.js";
import { sha256Hex } from "./sha256.js";

export type ConnectionState = "idle" | "connecting" | "live" | "reconnecting" | "closed" | "unauthenticated";

export interface ChatConnectionOptions {
  /** Envoy's gRPC-Web endpoint, e.g. "http://localhost:8080" (no trailing path). */
  baseUrl: string;
  /** The JWT, or a function returning a fresh one (called before every call). */
  token: string | (() => string | Promise<string>);
  /** Where positions survive reloads. Default: sessionStorage (per tab). */
  positionStore?: PositionStore;
  backoff?: Partial<BackoffOptions>;
  /** Reconnect when nothing (not even a heartbeat) arrived for this long. Default 70 s. */
  idleTimeoutMs?: number;
  /**
   * After a reload, stored positions are used when they are at most this many messages
   * behind the group's newest message (the rest comes from history). Default 500.
   */
  maxResumeMessages?: number;
  /** Bytes per UploadChunk call (the server refuses chunks above 1 MiB). Default 256 KiB. */
  uploadChunkBytes?: number;
  /** Passed to the transport (tests). */
  fetch?: typeof globalThis.fetch;
}

export interface SendOptions {
  type?: MessageType;
  replyToId?: bigint;
  attachmentId?: string;
  /** Supply your own idempotency key (e.g. to retry after a reload); default: a new UUID. */
  clientMsgId?: string;
}

export interface UploadProgress {
  sent: number;
  total: number;
}

type Listener<T> = (value: T) => void;

const TRANSIENT = new Set<Code>([Code.Unavailable, Code.Unknown, Code.DeadlineExceeded, Code.Internal, Code.Aborted]);

export function newClientMsgId(): string {
  const c = globalThis.crypto;
  if (c !== undefined && typeof c.randomUUID === "function") return c.randomUUID();
  // randomUUID is missing in insecure contexts: 122 random bits formatted the same way.
  const bytes = new Uint8Array(16);
  if (c !== undefined && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The group a ChatEvent belongs to (0n for presence and heartbeats). */
export function eventGroupId(ev: ChatEvent): bigint {
  const e = ev.event;
  switch (e.case) {
    case "message":
    case "updated":
      return e.value.groupId;
    case "typing":
    case "member":
    case "gap":
    case "receipt":
    case "mention":
    case "thread":
    case "pin":
    case "groupUpdated":
    case "groupDeleted":
    case "moderation":
      return e.value.groupId;
    default:
      return 0n;
  }
}

export class ChatConnection {
  readonly client: Client<typeof ChatService>;
  readonly baseUrl: string;
  private readonly tokenSource: () => string | Promise<string>;
  private readonly storeOption: PositionStore | undefined;
  private storeValue: PositionStore | undefined;
  private tokenSeen: string | undefined;
  private identityValue: TokenIdentity | undefined;
  private readonly backoffOptions: BackoffOptions;
  private readonly idleTimeoutMs: number;
  private readonly maxResume: bigint;
  private readonly chunkBytes: number;
  private readonly positions = new Map<string, Position>();
  private readonly eventListeners = new Set<Listener<ChatEvent>>();
  private readonly stateListeners = new Set<Listener<ConnectionState>>();
  private readonly errorListeners = new Set<Listener<unknown>>();
  private loop: Promise<void> | undefined;
  private closer = new AbortController();
  private streamAbort: AbortController | undefined;
  private _state: ConnectionState = "idle";
  private _reconnects = 0;
  private persistTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: ChatConnectionOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    const token = options.token;
    this.tokenSource = typeof token === "string" ? () => token : token;
    if (typeof token === "string") this.noteToken(token);
    this.storeOption = options.positionStore;
    this.backoffOptions = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.idleTimeoutMs = options.idleTimeoutMs ?? 70_000;
    this.maxResume = BigInt(options.maxResumeMessages ?? 500);
    this.chunkBytes = options.uploadChunkBytes ?? 256 * 1024;
    const auth: Interceptor = (next) => async (req) => {
      const current = await this.tokenSource();
      try {
        this.noteToken(current);
      } catch {
        // Not a JWT we can read: the server decides; only the display identity stays unknown.
      }
      req.header.set("authorization", `Bearer ${current}`);
      return next(req);
    };
    const transport = createGrpcWebTransport({
      baseUrl: this.baseUrl,
      interceptors: [auth],
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    this.client = createClient(ChatService, transport);
  }

  // ---- identity --------------------------------------------------------------------------------

  /**
   * The caller, read from the token (the server verifies it; this is for display). Known at
   * once for a string token; for a function (`() => window.chatToken`) or a promise, after
   * `identity()`, `start()` or the first call. 0n / "" until then.
   */
  get userId(): bigint {
    return this.identityValue?.userId ?? 0n;
  }

  get userName(): string {
    return this.identityValue?.name ?? "";
  }

  /**
   * Reads the token (calling the token function if needed) and returns who it names; rejects
   * when the token is not a JWT with a `sub`.
   */
  async identity(): Promise<TokenIdentity> {
    if (this.identityValue === undefined) this.noteToken(await this.tokenSource());
    return this.identityValue!;
  }

  private noteToken(token: string): void {
    if (token === this.tokenSeen) return;
    this.identityValue = decodeToken(token);
    this.tokenSeen = token;
  }

  /** Positions are kept per user: the default store's key needs the identity. */
  private get store(): PositionStore {
    this.storeValue ??=
      this.storeOption ?? defaultPositionStore(`chat.positions.${this.baseUrl}.${this.userId}`);
    return this.storeValue;
  }

  // ---- events -------------------------------------------------------------------------------

  get state(): ConnectionState {
    return this._state;
  }

  /** How many times the stream was re-established after the first connect. */
  get reconnects(): number {
    return this._reconnects;
  }

  /** Every event of every group (filter with `eventGroupId`). Returns an unsubscribe function. */
  onEvent(listener: Listener<ChatEvent>): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  onState(listener: Listener<ConnectionState>): () => void {
    this.stateListeners.add(listener);
    listener(this._state);
    return () => this.stateListeners.delete(listener);
  }

  /** Stream errors (each one is followed by a reconnect unless the token was refused). */
  onError(listener: Listener<unknown>): () => void {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }

  position(groupId: bigint): Position | undefined {
    return this.positions.get(String(groupId));
  }

  // ---- the subscription -----------------------------------------------------------------------

  /**
   * Lists the caller's groups, seeds positions (stored ones when close enough, else each
   * group's newest seq, so nothing posted from now on can be missed) and opens the stream.
   * Resolves with the groups once the list is loaded; the stream runs until `close()`.
   */
  async start(): Promise<Group[]> {
    if (this.loop !== undefined) return this.listMyGroups();
    this.closer = new AbortController();
    await this.identity().catch(() => undefined); // the server judges the token, not us
    const stored = this.store.load();
    const groups = await this.listMyGroups();
    for (const g of groups) this.seedPosition(g, stored.get(String(g.id)));
    this.persist();
    this.loop = this.run(this.closer.signal);
    return groups;
  }

  /** Track a group the connection did not know at start (e.g. just created or joined). */
  track(group: Group): void {
    if (!this.positions.has(String(group.id))) {
      this.seedPosition(group, undefined);
      this.persist();
    }
  }

  /** Drop the current stream now and resume immediately (e.g. after `online` fires). */
  reconnectNow(): void {
    this.streamAbort?.abort();
  }

  async close(): Promise<void> {
    this.closer.abort();
    this.streamAbort?.abort();
    const loop = this.loop;
    this.loop = undefined;
    await loop;
    this.flushPositions();
    this.setState("closed");
  }

  private seedPosition(group: Group, stored: Position | undefined): void {
    const usable =
      stored !== undefined &&
      stored.lastSeq <= group.lastSeq &&
      group.lastSeq - stored.lastSeq <= this.maxResume;
    this.positions.set(
      String(group.id),
      usable ? stored : { lastSeq: group.lastSeq, lastUpdateSeq: group.lastUpdateSeq },
    );
  }

  private async run(closed: AbortSignal): Promise<void> {
    let attempt = 0;
    let connectedOnce = false;
    while (!closed.aborted) {
      this.setState(connectedOnce ? "reconnecting" : "connecting");
      const abort = new AbortController();
      this.streamAbort = abort;
      let idle: ReturnType<typeof setTimeout> | undefined;
      const armIdle = (): void => {
        clearTimeout(idle);
        idle = setTimeout(() => abort.abort(), this.idleTimeoutMs);
      };
      const markLive = (): void => {
        if (this._state === "live") return;
        if (connectedOnce) this._reconnects += 1;
        connectedOnce = true;
        attempt = 0;
        this.setState("live");
      };
      try {
        armIdle();
        const positions = [...this.positions].map(([groupId, p]) =>
          create(GroupPositionSchema, {
            groupId: BigInt(groupId),
            lastSeq: p.lastSeq,
            lastUpdateSeq: p.lastUpdateSeq,
          }),
        );
        const stream = this.client.subscribe(
          { positions },
          {
            signal: abort.signal,
            onHeader: (headers) => {
              // The server registers the stream, then sends `chat-subscribed: 1`.
              if (headers.get("chat-subscribed") === "1") markLive();
            },
          },
        );
        for await (const batch of stream) {
          armIdle();
          markLive();
          for (const ev of batch.events) {
            this.advance(ev);
            this.emit(ev);
          }
          this.schedulePersist();
        }
        // The server ended the stream (pod draining): resume right away.
      } catch (err) {
        if (closed.aborted) break;
        const ce = ConnectError.from(err);
        if (ce.code === Code.Unauthenticated) {
          this.emitError(ce);
          this.setState("unauthenticated");
          break;
        }
        if (!(abort.signal.aborted && ce.code === Code.Canceled)) this.emitError(ce);
      } finally {
        clearTimeout(idle);
      }
      if (closed.aborted) break;
      this.setState("reconnecting");
      await sleep(backoffDelay(attempt, this.backoffOptions), closed);
      attempt += 1;
    }
  }

  /** Move the stored position forward for an event (before listeners see it). */
  private advance(ev: ChatEvent): void {
    const e = ev.event;
    const key = String(eventGroupId(ev));
    const pos = this.positions.get(key) ?? { lastSeq: 0n, lastUpdateSeq: 0n };
    switch (e.case) {
      case "message":
        if (e.value.seq > pos.lastSeq) pos.lastSeq = e.value.seq;
        break;
      case "updated":
        if (e.value.updateSeq > pos.lastUpdateSeq) pos.lastUpdateSeq = e.value.updateSeq;
        break;
      case "member":
        if (e.value.seq > pos.lastSeq) pos.lastSeq = e.value.seq;
        break;
      case "gap":
        // Replay was cut short: live events continue from resume_seq; the UI reloads history.
        if (e.value.resumeSeq - 1n > pos.lastSeq) pos.lastSeq = e.value.resumeSeq - 1n;
        break;
      default:
        return;
    }
    this.positions.set(key, pos);
  }

  private emit(ev: ChatEvent): void {
    for (const l of this.eventListeners) {
      try {
        l(ev);
      } catch (err) {
        this.emitError(err);
      }
    }
  }

  private emitError(err: unknown): void {
    for (const l of this.errorListeners) l(err);
  }

  private setState(state: ConnectionState): void {
    if (state === this._state) return;
    this._state = state;
    for (const l of this.stateListeners) l(state);
  }

  private schedulePersist(): void {
    if (this.persistTimer !== undefined) return;
    this.persistTimer = setTimeout(() => this.flushPositions(), 250);
  }

  private flushPositions(): void {
    clearTimeout(this.persistTimer);
    this.persistTimer = undefined;
    this.persist();
  }

  private persist(): void {
    this.store.save(this.positions);
  }

  // ---- unary helpers ----------------------------------------------------------------------------

  async listMyGroups(): Promise<Group[]> {
    return (await this.client.listMyGroups({})).groups;
  }

  getGroup(groupId: bigint): Promise<Group> {
    return this.client.getGroup({ groupId });
  }

  async createGroup(name: string, memberIds: bigint[] = [], description = ""): Promise<Group> {
    const group = await this.client.createGroup({ name, memberIds, description });
    this.track(group);
    return group;
  }

  async joinGroup(groupId: bigint, userId = 0n): Promise<void> {
    await this.client.joinGroup({ groupId, userId });
  }

  async leaveGroup(groupId: bigint, userId = 0n): Promise<void> {
    await this.client.leaveGroup({ groupId, userId });
  }

  /** Owners/admins: BAN, UNBAN, MUTE or UNMUTE a member below their role (0n: until lifted). */
  moderateMember(
    groupId: bigint,
    userId: bigint,
    kind: ModerationAction_Kind,
    reason = "",
    durationSeconds = 0n,
  ): Promise<ModerationAction> {
    return this.client.moderateMember({ groupId, userId, kind, reason, durationSeconds });
  }

  async members(groupId: bigint): Promise<User[]> {
    return (await this.client.getGroupMembers({ groupId })).members;
  }

  /** Newest page when `beforeId` is 0n; each page in chronological order. */
  history(groupId: bigint, beforeId = 0n, limit = 50): Promise<MessageHistoryResponse> {
    return this.client.getMessageHistory({ groupId, beforeId, limit });
  }

  /** Posts a message; transient failures are retried with the same client_msg_id. */
  async sendMessage(groupId: bigint, content: string, options: SendOptions = {}): Promise<MessageResponse> {
    const request = {
      groupId,
      content,
      type: options.type ?? MessageType.TEXT,
      clientMsgId: options.clientMsgId ?? newClientMsgId(),
      replyToId: options.replyToId ?? 0n,
      attachmentId: options.attachmentId ?? "",
    };
    return this.retrying(() => this.client.sendMessage(request));
  }

  async setTyping(groupId: bigint, isTyping: boolean): Promise<void> {
    await this.client.sendTypingIndicator({ groupId, isTyping });
  }

  markRead(groupId: bigint, seq = 0n): Promise<{ readSeq: bigint; unreadCount: bigint }> {
    return this.client.markRead({ groupId, seq });
  }

  readReceipts(groupId: bigint, messageId: bigint): Promise<ReadReceiptsResponse> {
    return this.client.getReadReceipts({ groupId, messageId });
  }

  addReaction(messageId: bigint, emoji: string): Promise<ReactionResponse> {
    return this.client.addReaction({ messageId, emoji });
  }

  removeReaction(messageId: bigint, emoji: string): Promise<ReactionResponse> {
    return this.client.removeReaction({ messageId, emoji });
  }

  editMessage(messageId: bigint, content: string): Promise<MessageResponse> {
    return this.client.editMessage({ messageId, content });
  }

  deleteMessage(messageId: bigint): Promise<MessageResponse> {
    return this.client.deleteMessage({ messageId });
  }

  // ---- threads, search, pins, mark-unread ---------------------------------------------------------

  /** Replies in the thread under `parentId`; retried with one client_msg_id like sendMessage. */
  replyInThread(parentId: bigint, content: string, alsoInGroup = false, clientMsgId = newClientMsgId()): Promise<MessageResponse> {
    return this.retrying(() => this.client.replyInThread({ parentId, content, alsoInGroup, clientMsgId }));
  }

  /** The parent (a tombstone once deleted) and its replies in order, after `afterSeq`. */
  thread(parentId: bigint, afterSeq = 0n, limit = 50): Promise<ThreadResponse> {
    return this.client.getThread({ parentId, afterSeq, limit });
  }

  markThreadRead(parentId: bigint, seq = 0n): Promise<ThreadReadResponse> {
    return this.client.markThreadRead({ parentId, seq });
  }

  /** Full-text search of the caller's groups (`groupId` 0n) or one; `pageToken` pages on. */
  search(query: string, groupId = 0n, limit = 20, pageToken = ""): Promise<SearchMessagesResponse> {
    return this.client.searchMessages({ query, groupId, limit, pageToken });
  }

  pin(messageId: bigint, pinned = true): Promise<MessageResponse> {
    return pinned ? this.client.pinMessage({ messageId }) : this.client.unpinMessage({ messageId });
  }

  async pinned(groupId: bigint): Promise<MessageResponse[]> {
    return (await this.client.listPinned({ groupId })).messages;
  }

  /** `messageId` becomes the caller's first unread message (the position only moves back). */
  markUnread(groupId: bigint, messageId: bigint): Promise<MarkUnreadResponse> {
    return this.client.markUnread({ groupId, messageId });
  }

  myMentions(beforeId = 0n, limit = 50): Promise<MessageHistoryResponse> {
    return this.client.getMyMentions({ beforeId, limit });
  }

  /**
   * Uploads a file in chunks (one unary UploadChunk per chunk: gRPC-Web has no client
   * streaming). After a failed chunk it asks GetUpload where the server stands and resumes
   * from there. Resolves with the stored attachment, to reference in `sendMessage`.
   */
  async upload(
    groupId: bigint,
    file: Blob,
    fileName: string,
    onProgress?: (p: UploadProgress) => void,
  ): Promise<Attachment> {
    const sha256 = await sha256Hex(file);
    let status = await this.client.startUpload({
      groupId,
      fileName,
      contentType: file.type || "application/octet-stream",
      size: BigInt(file.size),
      sha256,
    });
    const uploadId = status.uploadId;
    let offset = Number(status.receivedBytes);
    let failures = 0;
    onProgress?.({ sent: offset, total: file.size });
    while (!status.complete) {
      const end = Math.min(file.size, offset + this.chunkBytes);
      const data = new Uint8Array(await file.slice(offset, end).arrayBuffer());
      try {
        status = await this.client.uploadChunk({ uploadId, offset: BigInt(offset), data });
        failures = 0;
      } catch (err) {
        const ce = ConnectError.from(err);
        // FAILED_PRECONDITION: our offset is not where the server stands; anything transient:
        // ask, then continue from the server's received_bytes.
        if (ce.code !== Code.FailedPrecondition && !TRANSIENT.has(ce.code)) throw ce;
        if (++failures > 5) throw ce;
        await sleep(backoffDelay(failures - 1, this.backoffOptions));
        status = await this.retrying(() => this.client.getUpload({ uploadId }));
      }
      offset = Number(status.receivedBytes);
      onProgress?.({ sent: offset, total: file.size });
      if (!status.complete && offset >= file.size) {
        throw new Error(`upload ${uploadId}: all ${file.size} bytes sent but not complete`);
      }
    }
    if (status.attachment === undefined) throw new Error(`upload ${uploadId} has no attachment`);
    return status.attachment;
  }

  /** Uploads `file` and posts it as an IMAGE (image/*) or FILE message with `caption`. */
  async sendFile(
    groupId: bigint,
    file: File,
    caption = "",
    onProgress?: (p: UploadProgress) => void,
  ): Promise<MessageResponse> {
    const attachment = await this.upload(groupId, file, file.name, onProgress);
    const type = attachment.contentType.startsWith("image/") ? MessageType.IMAGE : MessageType.FILE;
    return this.sendMessage(groupId, caption, { type, attachmentId: attachment.id });
  }

  /** Downloads an attachment (server stream of chunks) into a Blob. */
  async download(attachmentId: string, signal?: AbortSignal): Promise<Blob> {
    const parts: Uint8Array<ArrayBuffer>[] = [];
    let type = "application/octet-stream";
    for await (const chunk of this.client.downloadFile({ attachmentId }, { signal })) {
      if (chunk.attachment?.contentType) type = chunk.attachment.contentType;
      if (chunk.data.length) parts.push(new Uint8Array(chunk.data));
    }
    return new Blob(parts, { type });
  }

  private async retrying<T>(call: () => Promise<T>, attempts = 6): Promise<T> {
    for (let i = 0; ; i++) {
      try {
        return await call();
      } catch (err) {
        const ce = ConnectError.from(err);
        if (i + 1 >= attempts || !TRANSIENT.has(ce.code)) throw ce;
        await sleep(backoffDelay(i, { ...this.backoffOptions, initialMs: 200, maxMs: 3000 }));
      }
    }
  }
}
