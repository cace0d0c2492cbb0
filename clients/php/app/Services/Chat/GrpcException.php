<?php

declare(strict_types=1);

namespace App\Services\Chat;

/**
 * A failed gRPC call: `getCode()` is the gRPC status code (see the constants), `details` the
 * server's message. Subclasses for the statuses an application handles differently.
 */
class GrpcException extends \RuntimeException
{
    public const OK = 0;
    public const CANCELLED = 1;
    public const UNKNOWN = 2;
    public const INVALID_ARGUMENT = 3;
    public const DEADLINE_EXCEEDED = 4;
    public const NOT_FOUND = 5;
    public const ALREADY_EXISTS = 6;
    public const PERMISSION_DENIED = 7;
    public const RESOURCE_EXHAUSTED = 8;
    public const FAILED_PRECONDITION = 9;
    public const ABORTED = 10;
    public const OUT_OF_RANGE = 11;
    public const UNIMPLEMENTED = 12;
    public const INTERNAL = 13;
    public const UNAVAILABLE = 14;
    public const DATA_LOSS = 15;
    public const UNAUTHENTICATED = 16;

    private const NAMES = [
        0 => 'OK', 1 => 'CANCELLED', 2 => 'UNKNOWN', 3 => 'INVALID_ARGUMENT',
        4 => 'DEADLINE_EXCEEDED', 5 => 'NOT_FOUND', 6 => 'ALREADY_EXISTS',
        7 => 'PERMISSION_DENIED', 8 => 'RESOURCE_EXHAUSTED', 9 => 'FAILED_PRECONDITION',
        10 => 'ABORTED', 11 => 'OUT_OF_RANGE', 12 => 'UNIMPLEMENTED', 13 => 'INTERNAL',
        14 => 'UNAVAILABLE', 15 => 'DATA_LOSS', 16 => 'UNAUTHENTICATED',
    ];

    /** @param array<string, string> $metadata trailers and headers of the response */
    public function __construct(
        int $code,
        public readonly string $details,
        public readonly array $metadata = [],
        ?\Throwable $previous = null,
    ) {
        parent::__construct(self::name($code) . ': ' . $details, $code, $previous);
    }

    public static function name(int $code): string
    {
        return self::NAMES[$code] ?? "STATUS_$code";
    }

    public function statusName(): string
    {
        return self::name($this->getCode());
    }

    /** Safe to retry (with the same client_msg_id for SendMessage). */
    public function isTransient(): bool
    {
        return in_array($this->getCode(), [self::UNAVAILABLE, self::DEADLINE_EXCEEDED, self::ABORTED], true);
    }

    /** @param array<string, string> $metadata */
    public static function fromStatus(int $code, string $details, array $metadata = []): self
    {
        return match ($code) {
            self::INVALID_ARGUMENT, self::FAILED_PRECONDITION, self::OUT_OF_RANGE => new InvalidArgumentGrpcException($code, $details, $metadata),
            self::NOT_FOUND => new NotFoundGrpcException($code, $details, $metadata),
            self::PERMISSION_DENIED => new PermissionDeniedGrpcException($code, $details, $metadata),
            self::UNAUTHENTICATED => new UnauthenticatedGrpcException($code, $details, $metadata),
            self::RESOURCE_EXHAUSTED => new ResourceExhaustedGrpcException($code, $details, $metadata),
            self::UNAVAILABLE, self::DEADLINE_EXCEEDED => new UnavailableGrpcException($code, $details, $metadata),
            default => new self($code, $details, $metadata),
        };
    }

    /** gRPC's mapping for HTTP errors from a proxy that never reached the service. */
    public static function fromHttpStatus(int $status): int
    {
        return match ($status) {
            400 => self::INTERNAL,
            401 => self::UNAUTHENTICATED,
            403 => self::PERMISSION_DENIED,
            404 => self::UNIMPLEMENTED,
            429, 502, 503, 504 => self::UNAVAILABLE,
            default => self::UNKNOWN,
        };
    }

    /** The HTTP status a controller should answer with. */
    public function httpStatus(): int
    {
        return match ($this->getCode()) {
            self::INVALID_ARGUMENT, self::FAILED_PRECONDITION, self::OUT_OF_RANGE => 422,
            self::NOT_FOUND => 404,
            self::ALREADY_EXISTS, self::ABORTED => 409,
            self::PERMISSION_DENIED => 403,
            self::UNAUTHENTICATED => 401,
            self::RESOURCE_EXHAUSTED => 429,
            self::UNAVAILABLE, self::DEADLINE_EXCEEDED => 503,
            self::UNIMPLEMENTED => 501,
            default => 502,
        };
    }
}
