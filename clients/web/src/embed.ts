// The Laravel embed of clients/web/README.md ("resources/js/chat.js"), line for line, so the
// browser test exercises that mode: a token *function*, start() not awaited, GroupChat mounted
// at once. Only the import differs: the sources instead of the built package (whose CSS the
// README imports separately; source components carry their own styles).
import { createApp, h } from "vue";
import { ChatConnection, GroupChat } from "./index.js";

declare global {
  interface Window {
    chatToken: string;
    chatEmbed?: { connection: ChatConnection };
  }
}

const el = document.getElementById("group-chat")!;
const connection = new ChatConnection({
  baseUrl: el.dataset.chatUrl!, // Envoy, e.g. https://chat.example.com
  token: () => window.chatToken, // a JWT for the logged-in user (see clients/php)
});
void connection.start(); // lists groups, opens the event stream
createApp({ render: () => h(GroupChat, { connection, groupId: el.dataset.groupId!, groupName: el.dataset.groupName }) }).mount(el);
window.chatEmbed = { connection };
