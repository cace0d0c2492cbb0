// Library entry: what a Vue app (e.g. Laravel + Vite, resources/js) imports.
export {
  ChatConnection,
  eventGroupId,
  newClientMsgId,
  type ChatConnectionOptions,
  type ConnectionState,
  type SendOptions,
  type UploadProgress,
} from "./client/connection.js";
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./client/backoff.js";
export {
  MemoryPositionStore,
  WebStoragePositionStore,
  type Position,
  type PositionStore,
} from "./client/positions.js";
export { decodeToken, type TokenIdentity } from "./client/jwt.js";
export { sha256Hex } from "./client/sha256.js";
export { default as GroupChat } from "./components/GroupChat.vue";
export { default as GroupList } from "./components/GroupList.vue";
export { default as SearchBox } from "./components/SearchBox.vue";
export { default as ThreadPanel } from "./components/ThreadPanel.vue";
export { splitHighlights, type SnippetPart } from "./client/format.js";
export * from "./gen/chat_pb.js";
