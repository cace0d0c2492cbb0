<?php

declare(strict_types=1);

namespace App\Services\Chat;

use Google\Protobuf\Internal\Message;

/**
 * Calls chat.ChatService over Envoy's gRPC-Web endpoint with plain HTTP/1.1 POSTs, so PHP
 * needs no grpc extension: only google/protobuf (pure PHP) and curl or PHP streams.
 *
 * Wire format (binary gRPC-Web): the request body is one frame, `0x00` + 4-byte big-endian
 * length + the serialized message, POSTed as `application/grpc-web+proto` to
 * `{baseUrl}/chat.ChatService/{Method}`. The response body holds data frames (flag 0x00) and
 * one trailer frame (flag 0x80, "name: value\r\n" lines) carrying grpc-status/grpc-message.
 * Errors without a body come as `grpc-status` in the HTTP headers (trailers-only), and a
 * proxy that cannot reach the service answers with a plain HTTP error status.
 */
final class GrpcWebTransport
{
    public const SERVICE = 'chat.ChatService';
    /** The app backend's API (ChatBackendClient); Envoy routes it only with `backend_api`. */
    public const BACKEND_SERVICE = 'chat.ChatBackend';

    private HttpClient $http;

    /**
     * @param string $baseUrl Envoy, e.g. "http://chat-envoy:8080" (no trailing slash needed)
     * @param float $timeout seconds per call (sent as grpc-timeout, and the HTTP timeout)
     */
    public function __construct(
        private readonly string $baseUrl,
        private readonly float $timeout = 10.0,
        ?HttpClient $http = null,
        private readonly string $service = self::SERVICE,
    ) {
        $this->http = $http ?? HttpClient::default();
    }

    /**
     * One unary call.
     *
     * @template T of Message
     * @param class-string<T> $responseClass
     * @param array<string, string> $metadata e.g. ['authorization' => 'Bearer ...']
     * @return T
     * @throws GrpcException with the call's status (see GrpcException::fromStatus)
     */
    public function unary(string $method, Message $request, string $responseClass, array $metadata = []): Message
    {
        $messages = $this->call($method, $request, $metadata);
        if (count($messages) !== 1) {
            throw new GrpcException(GrpcException::INTERNAL, sprintf('%s: expected one response message, got %d', $method, count($messages)));
        }
        /** @var T $response */
        $response = new $responseClass();
        $response->mergeFromString($messages[0]);
        return $response;
    }

    /**
     * A server-streaming call read to its end (for bounded streams such as DownloadFile).
     *
     * @template T of Message
     * @param class-string<T> $responseClass
     * @param array<string, string> $metadata
     * @return list<T>
     */
    public function serverStream(string $method, Message $request, string $responseClass, array $metadata = []): array
    {
        $out = [];
        foreach ($this->call($method, $request, $metadata) as $bytes) {
            /** @var T $message */
            $message = new $responseClass();
            $message->mergeFromString($bytes);
            $out[] = $message;
        }
        return $out;
    }

    /**
     * @param array<string, string> $metadata
     * @return list<string> serialized response messages
     */
    private function call(string $method, Message $request, array $metadata): array
    {
        $headers = [
            'content-type' => 'application/grpc-web+proto',
            'accept' => 'application/grpc-web+proto',
            'x-grpc-web' => '1',
            'x-user-agent' => 'grpc-web-php/1.0',
            'grpc-timeout' => max(1, (int) ceil($this->timeout * 1000)) . 'm',
        ];
        foreach ($metadata as $name => $value) {
            $headers[strtolower($name)] = $value;
        }
        $url = rtrim($this->baseUrl, '/') . '/' . $this->service . '/' . $method;
        try {
            $response = $this->http->post($url, $headers, self::frame($request->serializeToString()), $this->timeout + 2.0);
        } catch (\RuntimeException $e) {
            throw new UnavailableGrpcException(GrpcException::UNAVAILABLE, "$method: " . $e->getMessage(), [], $e);
        }

        [$messages, $trailers] = self::parseBody($response->body);
        // Trailers-only responses put the status in the HTTP headers.
        $status = $trailers['grpc-status'] ?? $response->headers['grpc-status'] ?? null;
        $message = $trailers['grpc-message'] ?? $response->headers['grpc-message'] ?? '';
        if ($status === null) {
            if ($response->status !== 200) {
                throw GrpcException::fromStatus(GrpcException::fromHttpStatus($response->status), sprintf('%s: HTTP %d %s', $method, $response->status, trim(substr($response->body, 0, 200))));
            }
            throw new GrpcException(GrpcException::INTERNAL, "$method: response without grpc-status");
        }
        $code = (int) $status;
        if ($code !== GrpcException::OK) {
            throw GrpcException::fromStatus($code, rawurldecode($message), $trailers + $response->headers);
        }
        return $messages;
    }

    /** `0x00` + big-endian length + message: one uncompressed gRPC-Web data frame. */
    public static function frame(string $payload): string
    {
        return "\x00" . pack('N', strlen($payload)) . $payload;
    }

    /**
     * Splits a binary gRPC-Web body into data frames and trailers (lower-cased names).
     *
     * @return array{0: list<string>, 1: array<string, string>}
     */
    public static function parseBody(string $body): array
    {
        $messages = [];
        $trailers = [];
        $offset = 0;
        $length = strlen($body);
        while ($offset < $length) {
            if ($length - $offset < 5) {
                throw new GrpcException(GrpcException::INTERNAL, 'truncated gRPC-Web frame header');
            }
            $flag = ord($body[$offset]);
            $size = unpack('N', substr($body, $offset + 1, 4))[1];
            $payload = substr($body, $offset + 5, $size);
            if (strlen($payload) !== $size) {
                throw new GrpcException(GrpcException::INTERNAL, 'truncated gRPC-Web frame');
            }
            $offset += 5 + $size;
            if ($flag & 0x80) {
                foreach (preg_split('/\r?\n/', $payload) ?: [] as $line) {
                    $colon = strpos($line, ':');
                    if ($colon !== false) {
                        $trailers[strtolower(trim(substr($line, 0, $colon)))] = trim(substr($line, $colon + 1));
                    }
                }
            } elseif ($flag & 0x01) {
                throw new GrpcException(GrpcException::INTERNAL, 'compressed gRPC-Web frames are not supported');
            } else {
                $messages[] = $payload;
            }
        }
        return [$messages, $trailers];
    }
}
