<?php

declare(strict_types=1);

namespace App\Services\Chat;

/**
 * The one HTTP operation the gRPC-Web transport needs. Implementations: curl
 * (CurlHttpClient) and PHP streams (StreamHttpClient, no extension needed). In Laravel you may
 * wrap the HTTP client/Guzzle instead (README.md shows how).
 */
abstract class HttpClient
{
    /**
     * POST `$body`; throw \RuntimeException when no HTTP response arrived at all.
     *
     * @param array<string, string> $headers
     */
    abstract public function post(string $url, array $headers, string $body, float $timeout): HttpResponse;

    public static function default(): self
    {
        return extension_loaded('curl') ? new CurlHttpClient() : new StreamHttpClient();
    }

    /**
     * @param list<string> $lines raw header lines (status lines included)
     * @return array<string, string>
     */
    protected static function parseHeaderLines(array $lines): array
    {
        $headers = [];
        foreach ($lines as $line) {
            if (preg_match('#^HTTP/\S+\s+\d+#', $line)) {
                $headers = []; // a new response (after 100 Continue or a redirect)
                continue;
            }
            $colon = strpos($line, ':');
            if ($colon !== false) {
                $headers[strtolower(trim(substr($line, 0, $colon)))] = trim(substr($line, $colon + 1));
            }
        }
        return $headers;
    }
}
