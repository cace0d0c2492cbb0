<?php

declare(strict_types=1);

namespace App\Services\Chat;

/**
 * Mints the HS256 JWTs the chat service accepts, exactly as tymon/jwt-auth does:
 * base64url(header) . base64url(payload) . base64url(HMAC-SHA256(secret)), with `sub` = the
 * user id and `prv` = sha1 of the user model class (the service ignores `prv`).
 *
 * With tymon/jwt-auth installed you do not need this: `auth('api')->tokenById($id)` or
 * `JWTAuth::fromUser($user)` return the same kind of token (put the display name in
 * getJWTCustomClaims(), see README.md). This class is for apps without it, and for
 * server-to-server calls made on behalf of a user (queues, commands).
 */
final class ChatTokenIssuer
{
    public function __construct(
        private readonly string $secret,
        private readonly int $ttlSeconds = 3600,
        private readonly string $issuer = '',
        private readonly string $modelClass = 'App\\Models\\User',
    ) {
        if (strlen($secret) < 16) {
            throw new \InvalidArgumentException('the JWT secret is too short');
        }
    }

    /** @param array<string, mixed> $claims extra claims, e.g. ['name' => ..., 'avatar' => ...] */
    public function forUser(int|string $userId, array $claims = []): string
    {
        $now = time();
        $payload = [
            'iat' => $now,
            'nbf' => $now,
            'exp' => $now + $this->ttlSeconds,
            'jti' => bin2hex(random_bytes(8)),
            'sub' => (string) $userId,
            'prv' => sha1($this->modelClass),
        ];
        if ($this->issuer !== '') {
            $payload['iss'] = $this->issuer;
        }
        $payload = $claims + $payload;
        $header = ['typ' => 'JWT', 'alg' => 'HS256'];
        $signingInput = self::b64(json_encode($header, JSON_THROW_ON_ERROR)) . '.'
            . self::b64(json_encode($payload, JSON_THROW_ON_ERROR | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES));
        return $signingInput . '.' . self::b64(hash_hmac('sha256', $signingInput, $this->secret, true));
    }

    private static function b64(string $bytes): string
    {
        return rtrim(strtr(base64_encode($bytes), '+/', '-_'), '=');
    }
}
