<?php

declare(strict_types=1);

namespace App\Services\Chat;

/**
 * Mints the short-lived backend tokens chat.ChatBackend accepts: HS256 with the service's
 * BACKEND_JWT_SECRET (never your users' JWT_SECRET), `chat_role: service`, `iat`, `exp`.
 * Keep the secret server-side (e.g. `config('services.chat.backend_secret')`); a token is
 * minted per call batch, so the TTL can stay short.
 */
final class ChatBackendTokenIssuer
{
    public function __construct(
        private readonly string $secret,
        private readonly int $ttlSeconds = 300,
        private readonly string $subject = 'laravel',
    ) {
        if (strlen($secret) < 32) {
            throw new \InvalidArgumentException('the backend secret must have at least 32 characters');
        }
        if ($ttlSeconds < 1 || $ttlSeconds > 3600) {
            throw new \InvalidArgumentException('backend tokens live 1 s to 1 h');
        }
    }

    public function token(): string
    {
        $now = time();
        $payload = ['sub' => $this->subject, 'iat' => $now, 'exp' => $now + $this->ttlSeconds, 'chat_role' => 'service'];
        $signingInput = self::b64(json_encode(['typ' => 'JWT', 'alg' => 'HS256'], JSON_THROW_ON_ERROR)) . '.'
            . self::b64(json_encode($payload, JSON_THROW_ON_ERROR));
        return $signingInput . '.' . self::b64(hash_hmac('sha256', $signingInput, $this->secret, true));
    }

    private static function b64(string $bytes): string
    {
        return rtrim(strtr(base64_encode($bytes), '+/', '-_'), '=');
    }
}
