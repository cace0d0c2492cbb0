/** Reads (does not verify) a JWT's payload: the client only needs its own id and name. */
export interface TokenIdentity {
  userId: bigint;
  name: string;
  exp: number | undefined;
}

export function decodeToken(token: string): TokenIdentity {
  const parts = token.split(".");
  if (parts.length !== 3) throw new Error("not a JWT (expected three dot-separated parts)");
  const b64 = parts[1]!.replace(/-/g, "+").replace(/_/g, "/");
  const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  const payload = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  const sub = payload["sub"];
  if (typeof sub !== "string" && typeof sub !== "number") throw new Error("JWT has no sub claim");
  const name = payload["name"];
  const exp = payload["exp"];
  return {
    userId: BigInt(sub),
    name: typeof name === "string" ? name : "",
    exp: typeof exp === "number" ? exp : undefined,
  };
}
