import type { Mention } from "../gen/chat_pb.js";

export interface ContentPart {
  text: string;
  mention?: { userId: bigint; all: boolean };
}

/** Splits message content at its mentions (offsets and lengths are in Unicode code points). */
export function splitMentions(content: string, mentions: readonly Mention[]): ContentPart[] {
  if (mentions.length === 0) return [{ text: content }];
  const chars = Array.from(content);
  const sorted = [...mentions].sort((a, b) => a.offset - b.offset);
  const parts: ContentPart[] = [];
  let at = 0;
  for (const m of sorted) {
    if (m.offset < at || m.offset + m.length > chars.length) continue;
    if (m.offset > at) parts.push({ text: chars.slice(at, m.offset).join("") });
    parts.push({
      text: chars.slice(m.offset, m.offset + m.length).join(""),
      mention: { userId: m.userId, all: m.all },
    });
    at = m.offset + m.length;
  }
  if (at < chars.length) parts.push({ text: chars.slice(at).join("") });
  return parts;
}

/** "Bob is typing…", "Bob and Carol are typing…", "4 people are typing…". */
export function typingText(names: readonly string[]): string {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names.length} people are typing…`;
}

/** The `@query` being typed right before the caret, if any. */
export function mentionQueryAt(text: string, caret: number): { start: number; query: string } | undefined {
  const before = text.slice(0, caret);
  const match = /(^|\s)@([\p{L}\p{N}_.\-]*)$/u.exec(before);
  if (match === null) return undefined;
  const query = match[2] ?? "";
  return { start: caret - query.length - 1, query };
}

export function formatTime(ms: bigint): string {
  if (ms === 0n) return "";
  const d = new Date(Number(ms));
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function formatSize(bytes: bigint): string {
  const n = Number(bytes);
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export interface SnippetPart {
  text: string;
  mark: boolean;
}

/**
 * Splits a search snippet (plain text) at its highlights ({offset, length} in Unicode code
 * points). Render `text` as text (never as HTML) and marked parts inside <mark>.
 */
export function splitHighlights(
  snippet: string,
  highlights: readonly { offset: number; length: number }[],
): SnippetPart[] {
  const chars = Array.from(snippet);
  const parts: SnippetPart[] = [];
  let at = 0;
  for (const h of [...highlights].sort((a, b) => a.offset - b.offset)) {
    if (h.offset < at || h.length <= 0 || h.offset + h.length > chars.length) continue;
    if (h.offset > at) parts.push({ text: chars.slice(at, h.offset).join(""), mark: false });
    parts.push({ text: chars.slice(h.offset, h.offset + h.length).join(""), mark: true });
    at = h.offset + h.length;
  }
  if (at < chars.length) parts.push({ text: chars.slice(at).join(""), mark: false });
  return parts;
}
