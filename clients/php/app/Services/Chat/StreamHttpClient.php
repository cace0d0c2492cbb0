<?php

declare(strict_types=1);

namespace App\Services\Chat;

/** PHP's http:// stream wrapper: works without any extension (chunked bodies are decoded). */
final class StreamHttpClient extends HttpClient
{
    public function post(string $url, array $headers, string $body, float $timeout): HttpResponse
    {
        $wire = '';
        foreach ($headers as $name => $value) {
            $wire .= "$name: $value\r\n";
        }
        $wire .= "connection: close\r\n";
        $context = stream_context_create(['http' => [
            'method' => 'POST',
            'header' => $wire,
            'content' => $body,
            'protocol_version' => 1.1, // Envoy refuses HTTP/1.0 by default
            'timeout' => $timeout,
            'ignore_errors' => true, // give us the body and headers of 4xx/5xx too
            'follow_location' => 0,
        ]]);
        $error = null;
        set_error_handler(static function (int $no, string $message) use (&$error): bool {
            $error = $message;
            return true;
        });
        try {
            $stream = fopen($url, 'rb', false, $context);
            if ($stream === false) {
                throw new \RuntimeException("POST $url failed: " . ($error ?? 'no response'));
            }
            $responseBody = stream_get_contents($stream);
            $meta = stream_get_meta_data($stream);
            fclose($stream);
        } finally {
            restore_error_handler();
        }
        /** @var list<string> $lines */
        $lines = $meta['wrapper_data'] ?? [];
        $status = 0;
        foreach ($lines as $line) {
            if (preg_match('#^HTTP/\S+\s+(\d+)#', $line, $m)) {
                $status = (int) $m[1];
            }
        }
        return new HttpResponse($status, self::parseHeaderLines($lines), (string) $responseBody);
    }
}
