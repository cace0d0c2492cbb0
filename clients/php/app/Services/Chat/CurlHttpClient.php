<?php

declare(strict_types=1);

namespace App\Services\Chat;

final class CurlHttpClient extends HttpClient
{
    public function post(string $url, array $headers, string $body, float $timeout): HttpResponse
    {
        $lines = [];
        $handle = curl_init($url);
        $wire = [];
        foreach ($headers as $name => $value) {
            $wire[] = "$name: $value";
        }
        $wire[] = 'expect:'; // no "100 Continue" round trip
        curl_setopt_array($handle, [
            CURLOPT_POST => true,
            CURLOPT_POSTFIELDS => $body,
            CURLOPT_HTTPHEADER => $wire,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_HTTP_VERSION => CURL_HTTP_VERSION_1_1,
            CURLOPT_TIMEOUT_MS => (int) ($timeout * 1000),
            CURLOPT_CONNECTTIMEOUT_MS => 5000,
            CURLOPT_HEADERFUNCTION => static function ($h, string $line) use (&$lines): int {
                $lines[] = rtrim($line, "\r\n");
                return strlen($line);
            },
        ]);
        $result = curl_exec($handle);
        if ($result === false) {
            $error = curl_error($handle);
            curl_close($handle);
            throw new \RuntimeException("POST $url failed: $error");
        }
        $status = (int) curl_getinfo($handle, CURLINFO_RESPONSE_CODE);
        curl_close($handle);
        return new HttpResponse($status, self::parseHeaderLines($lines), (string) $result);
    }
}
